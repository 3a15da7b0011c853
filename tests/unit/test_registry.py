import json
import os
import subprocess
import sys

import pytest

from nbops.exceptions import RegistryError
from nbops.registry import Registry, bump, default_root, parse_version


def publish(registry: Registry, name: str, files: dict[str, str] | None = None) -> str:
    with registry.lock(name):
        version = registry.next_version(name)
        built = registry.build_dir(name)
        (built / "manifest.json").write_text(json.dumps({"name": name, "version": version, **(files or {})}))
        registry.publish(name, version, built)
    return version


def test_versions_bump_and_never_overwrite(tmp_path):
    registry = Registry(tmp_path / "reg")
    assert registry.models() == [] and registry.versions("m") == []
    assert [publish(registry, "m") for _ in range(3)] == ["0.1.0", "0.2.0", "0.3.0"]
    assert registry.versions("m") == ["0.1.0", "0.2.0", "0.3.0"] and registry.models() == ["m"]
    built = registry.build_dir("m")
    with pytest.raises(RegistryError, match="immutable"):
        registry.publish("m", "0.2.0", built)
    assert bump("0.3.0", "major") == "1.0.0" and bump("0.3.0", "patch") == "0.3.1" and parse_version("v1.2.3") == (1, 2, 3)


def test_assign_resolve_and_rollback(tmp_path):
    registry = Registry(tmp_path / "reg")
    publish(registry, "m"), publish(registry, "m")
    registry.assign("m", "0.2.0", "production")
    assert registry.resolve("m@production") == ("m", "0.2.0")
    registry.assign("m", "0.1.0", "production", reason="rollback")
    assert registry.resolve("m@production") == ("m", "0.1.0")
    assert registry.resolve("m") == ("m", "0.2.0") and registry.resolve("m@v0.1.0") == ("m", "0.1.0")
    history = registry.stages_doc("m")["history"]
    assert [(h["version"], h["previous"]) for h in history] == [("0.2.0", None), ("0.1.0", "0.2.0")]
    with pytest.raises(RegistryError, match="no version in stage 'staging'"):
        registry.resolve("m@staging")
    with pytest.raises(RegistryError, match=r"has no version 9.9.9 \(versions: 0.1.0, 0.2.0\)"):
        registry.resolve("m@9.9.9")
    with pytest.raises(RegistryError, match="no model 'other'"):
        registry.resolve("other")


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "", "a b"])
def test_model_names_are_validated(tmp_path, name):
    with pytest.raises(RegistryError, match="not allowed"):
        Registry(tmp_path).versions(name)


def test_a_crashed_build_leaves_no_version(tmp_path):
    registry = Registry(tmp_path / "reg")
    publish(registry, "m")
    built = registry.build_dir("m")  # a promotion killed while building
    (built / "manifest.json").write_text("{}")
    (tmp_path / "reg/m/0.2.0").mkdir()  # a rename that happened without its marker
    assert registry.versions("m") == ["0.1.0"]
    assert registry.next_version("m") == "0.3.0"  # the claimed number is not reused
    registry.cleanup("m")
    assert not list((tmp_path / "reg/m").glob(".tmp-*"))


def test_fsspec_url_roots(tmp_path):
    registry = Registry(f"file://{tmp_path}/reg")
    assert publish(registry, "m") == "0.1.0"
    assert Registry(tmp_path / "reg").versions("m") == ["0.1.0"]
    memory = Registry("memory://nbops-test-registry")
    assert not memory.local
    built = memory.build_dir("m")
    (built / "manifest.json").write_text(json.dumps({"name": "m"}))
    memory.publish("m", "0.1.0", built)
    memory.assign("m", "0.1.0", "staging")
    assert memory.versions("m") == ["0.1.0"] and memory.stages("m") == {"staging": "0.1.0"}
    assert (memory.local_path("m", "0.1.0") / "manifest.json").exists()


def test_default_root_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("NBOPS_REGISTRY", raising=False)
    assert default_root(tmp_path) == str(tmp_path / "registry")
    assert default_root(tmp_path, {"registry": "shared/reg"}) == str(tmp_path / "shared/reg")
    assert default_root(tmp_path, {"registry": "s3://bucket/models"}) == "s3://bucket/models"
    monkeypatch.setenv("NBOPS_REGISTRY", "/srv/models")
    assert default_root(tmp_path, {"registry": "shared/reg"}) == "/srv/models"


def test_concurrent_writers_get_distinct_versions(tmp_path):
    code = (
        "import json, sys\n"
        "from nbops.registry import Registry\n"
        "r = Registry(sys.argv[1])\n"
        "for _ in range(5):\n"
        "    with r.lock('m'):\n"
        "        v = r.next_version('m'); d = r.build_dir('m')\n"
        "        (d / 'manifest.json').write_text('{}'); r.publish('m', v, d)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "reg")]) for _ in range(4)]
    assert all(p.wait() == 0 for p in procs)
    assert Registry(tmp_path / "reg").versions("m") == [f"0.{i}.0" for i in range(1, 21)]
