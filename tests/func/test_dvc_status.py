"""The promotion's up-to-date check reads DVC's state without taking DVC's locks (nbops.core.dvc):
a real git + DVC repository, real `dvc repro`, and `dvc status` itself for comparison."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbops.core.dvc import describe_status, stale_stages, start_status
from nbops.testing import init_repo, run

pytestmark = pytest.mark.slow

DVC_YAML = """stages:
  copy:
    cmd: python -c "import yaml; n = yaml.safe_load(open('params.yaml'))['n']; open('out.txt', 'w').write(open('data.txt').read() * n)"
    deps: [data.txt]
    params: [n]
    outs: [out.txt]
"""

HOLD_DVC_LOCK = (
    "import sys, time\n"
    "from dvc.repo import Repo\n"
    "repo = Repo('.')\n"
    "repo.lock.lock()\n"  # what every `dvc` command holds while it runs
    "print('locked', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory):
    from nbops.testing import command_env

    home = tmp_path_factory.mktemp("dvc-status")
    env = command_env(home)
    project = home / "project"
    project.mkdir()
    (project / "data.txt").write_text("row\n")
    (project / "params.yaml").write_text("n: 2\n")
    (project / "dvc.yaml").write_text(DVC_YAML)
    init_repo(project, env)
    run(["dvc", "repro"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "reproduced"], project, env)
    return project, env


def status(project: Path, env: dict[str, str]) -> dict[str, list[str]]:
    """The up-to-date gate's call: nbops.core.dvc's subprocess, from the project folder."""
    import os

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return stale_stages(start_status(project, ["copy"]))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def dvc_tmp(project: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((project / ".dvc/tmp").iterdir()) if p.is_file()}


def test_status_matches_dvc_and_writes_nothing_under_dvc(dvc_project):
    project, env = dvc_project
    before = dvc_tmp(project)
    assert status(project, env) == {}
    (project / "params.yaml").write_text("n: 3\n")
    try:
        assert status(project, env) == {"copy": ["changed deps: n modified"]}
        (project / "data.txt").write_text("changed\n")
        assert status(project, env) == {"copy": ["changed deps: data.txt modified", "changed deps: n modified"]}
        assert dvc_tmp(project) == before  # no lock taken, no rwlock written, nothing else either
        dvc_says = json.loads(run(["dvc", "status", "--json", "copy"], project, env).stdout)
        assert describe_status(dvc_says) == status(project, env)  # the same answer as DVC's own command
    finally:
        (project / "params.yaml").write_text("n: 2\n")
        (project / "data.txt").write_text("row\n")


def test_a_corrupt_rwlock_left_by_a_killed_dvc_does_not_matter(dvc_project):
    project, env = dvc_project
    rwlock = project / ".dvc/tmp/rwlock"
    rwlock.write_text("")  # what a dvc process killed while rewriting it leaves
    try:
        refused = run(["dvc", "status", "copy"], project, env, check=False)
        assert refused.returncode != 0 and "JSON structure is corrupted" in refused.stderr  # DVC itself is stuck
        assert status(project, env) == {}
        assert rwlock.read_text() == ""  # read around, never written
    finally:
        rwlock.unlink()


def test_status_runs_while_another_dvc_command_holds_the_repository_lock(dvc_project):
    project, env = dvc_project
    holder = subprocess.Popen([sys.executable, "-c", HOLD_DVC_LOCK], cwd=project, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        refused = run(["dvc", "status", "copy"], project, env, check=False)
        assert refused.returncode != 0 and "Unable to acquire lock" in refused.stderr
        started = time.monotonic()
        assert status(project, env) == {}
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()


def test_a_broken_dvc_yaml_is_reported_in_one_line(dvc_project):
    project, env = dvc_project
    original = (project / "dvc.yaml").read_text()
    (project / "dvc.yaml").write_text("stages:\n  copy: [not, a, stage\n")
    try:
        with pytest.raises(Exception, match="dvc status failed: ") as failed:
            status(project, env)
        assert "\n" not in str(failed.value)
    finally:
        (project / "dvc.yaml").write_text(original)
