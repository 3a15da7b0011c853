"""runtime/follow.py reads the registry's layout itself (the runtime imports nothing of nbops):
these tests hold it to what nbops.models.registry writes, on a folder and on an fsspec URL."""

from __future__ import annotations

import json
import time

import fsspec
import pytest

from nbops.models import registry as registry_module
from nbops.models.registry import Registry
from nbops.runtime import follow
from nbops.runtime.errors import PackageError
from nbops.runtime.follow import StageSource, shown_root


def publish(reg: Registry, name: str = "m", model_bytes: bytes = b"model") -> str:
    """A version as nbops.models.registry publishes it (the runtime's checks of its content are elsewhere)."""
    with reg.lock(name):
        version = reg.next_version(name)
        built = reg.build_dir(name)
        (built / "manifest.json").write_text(json.dumps({"name": name, "version": version, "model_file": "model.skops"}))
        (built / "model.skops").write_bytes(model_bytes)
        (built / "card.html").write_text("<p>not needed to serve</p>")
        reg.publish(name, version, built)
    return version


def test_the_layout_constants_are_the_registrys():
    assert follow.STAGES_FILE == registry_module.STAGES_FILE
    assert follow.COMPLETE_MARKER == registry_module.COMPLETE_MARKER
    assert follow.MANIFEST_FILE == "manifest.json"
    for version in ("0.1.0", "10.20.30"):
        assert follow._VERSION.match(version) and registry_module._SEMVER.match(version)
    for bad in ("v1.2.3", "1.2", "latest", "1.2.3/../x"):
        assert not follow._VERSION.match(bad)


@pytest.mark.parametrize("root_kind", ["folder", "file-url", "memory-url"])
def test_the_stage_read_is_what_the_registry_resolves(tmp_path, root_kind):
    root = {"folder": str(tmp_path / "reg"), "file-url": f"file://{tmp_path}/reg",
            "memory-url": f"memory://follow-{time.time_ns()}/reg"}[root_kind]
    reg = Registry(root)
    source = StageSource(root, "m", "production", cache_dir=tmp_path / "cache")
    assert source.assigned() is None and source.marker() == ("missing",)
    first, second = publish(reg), publish(reg, model_bytes=b"second")
    assert source.assigned() is None  # published, not assigned
    for version in (second, first, second):  # a promotion, a rollback, a promotion
        before = source.marker()
        reg.assign("m", version, "production", reason="test")
        after = source.marker()
        assert after is None or after != before  # None: the store gives no ETag or mtime, so every poll reads
        assert source.assigned() == reg.resolve("m@production")[1] == version
        assert source.marker() == source.marker()  # nothing changed: a poll reads nothing
    reg.assign("m", first, "staging")
    assert StageSource(root, "m", "staging").assigned() == first
    assert StageSource(root, "m", "canary").assigned() is None

    folder = source.fetch(second)
    assert json.loads((folder / "manifest.json").read_text())["version"] == second
    assert (folder / "model.skops").read_bytes() == b"second"
    if root_kind == "memory-url":  # remote: only what serving reads was downloaded, into the cache
        assert folder.is_relative_to(tmp_path / "cache")
        assert sorted(p.name for p in folder.iterdir()) == [".complete", "manifest.json", "model.skops"]
        assert source.fetch(second) == folder  # once
    else:
        assert folder == reg.local_path("m", second)


def test_an_incomplete_version_is_not_fetched(tmp_path):
    reg = Registry(tmp_path / "reg")
    version = publish(reg)
    (tmp_path / "reg" / "m" / version / ".complete").unlink()  # as if the upload stopped before its marker
    assert version not in reg.versions("m")
    with pytest.raises(PackageError, match="not a complete version"):
        StageSource(tmp_path / "reg", "m", "production").fetch(version)


def test_memory_url_incomplete_version_is_not_fetched(tmp_path):
    root = f"memory://follow-incomplete-{time.time_ns()}/reg"
    reg = Registry(root)
    version = publish(reg)
    fs, base = fsspec.core.url_to_fs(root)
    fs.rm(f"{base}/m/{version}/.complete")
    with pytest.raises(PackageError, match="not a complete version"):
        StageSource(root, "m", "production", cache_dir=tmp_path).fetch(version)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not a stages file"),
    ('{"stages": {"production": {"version": "../../etc"}}}', "names no valid version"),
    ('{"stages": {"production": "0.1.0"}}', "names no valid version"),
])
def test_a_broken_stages_file_is_named(tmp_path, text, message):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "stages.json").write_text(text)
    with pytest.raises(PackageError, match=message):
        StageSource(tmp_path, "m", "production").assigned()


@pytest.mark.parametrize("name, stage", [("../m", "production"), ("m", "a/b"), (".hidden", "production"), ("m", "..")])
def test_names_that_are_not_one_path_component_are_refused(tmp_path, name, stage):
    with pytest.raises(PackageError, match="is not allowed"):
        StageSource(tmp_path, name, stage)


def test_credentials_in_a_url_are_never_shown():
    assert shown_root("s3://AKIA123:s3cr3t@bucket/models") == "s3://bucket/models"
    assert shown_root("s3://bucket/models") == "s3://bucket/models"
    assert shown_root("/srv/registry") == "/srv/registry"
