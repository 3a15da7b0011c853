import json
import os
import re
import subprocess
import sys

import pytest

from nbops.core.exceptions import RegistryError
from nbops.models.registry import Registry, bump, default_root, parse_version


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
        "from nbops.models.registry import Registry\n"
        "r = Registry(sys.argv[1])\n"
        "for _ in range(5):\n"
        "    with r.lock('m'):\n"
        "        v = r.next_version('m'); d = r.build_dir('m')\n"
        "        (d / 'manifest.json').write_text('{}'); r.publish('m', v, d)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "reg")]) for _ in range(4)]
    assert all(p.wait() == 0 for p in procs)
    assert Registry(tmp_path / "reg").versions("m") == [f"0.{i}.0" for i in range(1, 21)]


# --- strict names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model\n", "model\r\n", "mod\nel"])
def test_a_name_with_a_line_break_is_refused(tmp_path, name):
    registry = Registry(tmp_path / "reg")
    with pytest.raises(RegistryError, match="not allowed") as refused:
        registry.versions(name)
    assert "\n" not in str(refused.value)
    publish(registry, "m")
    with pytest.raises(RegistryError, match="stage name .* is not allowed"):
        registry.assign("m", "0.1.0", name)
    assert registry.stages("m") == {}


@pytest.mark.parametrize("stage", ["0.1.0", "v0.1.0", "10.20.30"])
def test_a_stage_named_like_a_version_is_refused(tmp_path, stage):
    registry = Registry(tmp_path / "reg")
    publish(registry, "m")
    with pytest.raises(RegistryError, match=rf"stage name '{stage}' looks like a version: NAME@{stage} always means the version"):
        registry.assign("m", "0.1.0", stage)
    registry.assign("m", "0.1.0", "canary")  # a word is fine, and reachable
    assert registry.resolve("m@canary") == ("m", "0.1.0") and registry.stages("m") == {"canary": "0.1.0"}


def test_a_version_with_a_trailing_newline_is_not_a_version(tmp_path):
    registry = Registry(tmp_path / "reg")
    publish(registry, "m")
    with pytest.raises(RegistryError, match="not of the form"):
        parse_version("0.1.0\n")
    with pytest.raises(RegistryError, match="no version in stage"):
        registry.resolve("m@0.1.0\n")


def test_a_300_character_name_gets_a_one_line_error(tmp_path, capsys):
    from nbops import cli

    long_name = "m" * 300
    with pytest.raises(RegistryError, match=r"model name 'm{20}'… \(300 characters\) is too long: at most 100 characters"):
        Registry(tmp_path / "reg").versions(long_name)
    # through the command line: one line on stderr, no traceback, exit status 1
    assert cli.main(["promote", long_name, "--registry", str(tmp_path / "reg")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too long" in err and "Traceback" not in err
    assert not (tmp_path / "reg").exists()


def test_a_registry_that_cannot_be_created_gets_a_clear_error(tmp_path):
    registry = Registry("/proc/nbops-registry")
    with pytest.raises(RegistryError, match=r"registry /proc/nbops-registry: cannot write /proc/nbops-registry.*point NBOPS_REGISTRY"):
        with registry.lock("m"):
            pass
    blocker = tmp_path / "file"
    blocker.write_text("a file where the registry's folder should be")
    with pytest.raises(RegistryError, match="cannot write"):
        Registry(blocker / "reg").build_dir("m")


# --- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o002, 0o775, 0o664), (0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_version_folders_respect_the_umask(tmp_path, umask, folder_mode, file_mode):
    old = os.umask(umask)
    try:
        registry = Registry(tmp_path / "reg")
        publish(registry, "m")
        registry.assign("m", "0.1.0", "staging")
    finally:
        os.umask(old)
    version = tmp_path / "reg/m/0.1.0"
    assert version.stat().st_mode & 0o777 == folder_mode
    for file in [version / "manifest.json", version / ".complete", tmp_path / "reg/m/stages.json"]:
        assert file.stat().st_mode & 0o777 == file_mode, file


# --- the lock ----------------------------------------------------------------------------------


def test_the_lock_leaves_no_file_in_the_registry(tmp_path):
    registry = Registry(tmp_path / "reg")
    with pytest.raises(RuntimeError):
        with registry.lock("m"):
            assert (tmp_path / "reg/m/.lock").exists()
            raise RuntimeError("a refused promotion")
    assert not (tmp_path / "reg").exists()  # created for the promotion, removed with it
    publish(registry, "m")
    with registry.lock("m"):
        pass
    assert sorted(p.name for p in (tmp_path / "reg/m").iterdir()) == ["0.1.0"]


HOLD = (
    "import sys, time\n"
    "from nbops.models.registry import Registry\n"
    "with Registry(sys.argv[1]).lock('m', purpose='promote m → staging'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(float(sys.argv[2]))\n"
)


def test_a_waiter_says_who_holds_the_lock_and_since_when(tmp_path):
    import socket

    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "reg"), "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        said: list[str] = []
        with pytest.raises(RegistryError) as timed_out:
            with Registry(tmp_path / "reg").lock("m", on_wait=said.append, timeout=1.5):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert said, "the waiter said nothing while it waited"
    for line in (said[0], str(timed_out.value)):
        assert f"pid {holder.pid} on host {socket.gethostname()} since " in line and "UTC" in line, line
        assert "promote m → staging" in line and "\n" not in line
    assert said[0].startswith(f"waiting for {tmp_path / 'reg/m/.lock'}")
    assert re.search(r"another writer of 'm' held the lock for all of \d+ s: pid", str(timed_out.value))


def test_a_killed_holder_frees_the_lock_at_once(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "reg"), "60"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    holder.kill()  # SIGKILL: no cleanup ran, its lock file and description stay behind
    holder.wait()
    assert (tmp_path / "reg/m/.lock").exists()
    said: list[str] = []
    with Registry(tmp_path / "reg").lock("m", on_wait=said.append, timeout=5):
        pass
    assert said == [] and not (tmp_path / "reg/m/.lock").exists()


def test_a_waiter_takes_the_lock_when_the_holder_releases_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "reg"), "1.5"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    said: list[str] = []
    with Registry(tmp_path / "reg").lock("m", on_wait=said.append, timeout=60):
        assert holder.wait(5) == 0  # it released the lock on its way out
    assert len(said) == 1 and f"pid {holder.pid}" in said[0]
