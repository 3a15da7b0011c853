"""Byte-identical on every checkout: two clones at different paths, each with its own fresh
virtual environment, reproduce the example to byte-identical reports and outputs, and leave
`dvc.lock` and the rest of git exactly as committed (marked slow: two environments, two pipelines).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from nbops.testing import fresh_venv, run

from ..conftest import REPO

pytestmark = pytest.mark.slow


def _head() -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


@pytest.mark.skipif(_head() is None, reason="not a git checkout of nbops: nothing to clone")
def test_two_clones_reproduce_byte_identical_outputs_and_leave_git_clean(tmp_path, env):
    # the paths differ in length and depth, so an absolute path anywhere shows as a difference
    clones = [tmp_path / "a" / "nbops", tmp_path / "somewhere-else" / "much" / "deeper" / "clone"]
    produced = []
    for clone in clones:
        run(["git", "clone", "-q", str(REPO), str(clone)], tmp_path, env)
        assert run(["git", "rev-parse", "HEAD"], clone, env).stdout.strip() == _head()
        # the quick start's first line, for what `dvc repro` needs: its own .venv with nbops' core
        # (the extras — JupyterLab, the server, the test tools — take no part in the pipeline)
        fresh_venv(clone / ".venv", env, "-e", str(clone))
        clone_env = {**env, "PATH": os.pathsep.join([str(clone / ".venv/bin"), env["PATH"]]),
                     "VIRTUAL_ENV": str(clone / ".venv")}
        assert run(["which", "nbops"], clone, clone_env).stdout.strip() == str(clone / ".venv/bin/nbops")
        run(["dvc", "repro"], clone, clone_env, timeout=1800)
        assert run(["git", "status", "--porcelain"], clone, clone_env).stdout == "", "dvc.lock or a notebook changed"
        outputs = run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--",
                       "reports", "metrics", "plots", "models", "data"], clone, clone_env).stdout.split()
        produced.append({path: (clone / path).read_bytes() for path in outputs})
    first, second = produced
    assert {"reports/ingest.ipynb", "reports/evaluate.ipynb", "models/failure-predictor.skops",
            "metrics/evaluate.json", "data/raw.csv"} <= set(first)
    assert sorted(first) == sorted(second)
    differing = [path for path in first if first[path] != second[path]]
    assert differing == [], f"outputs differ between the clones: {differing}"
    for path, data in first.items():
        assert str(clones[0]).encode() not in data, f"{path} holds its clone's path"
