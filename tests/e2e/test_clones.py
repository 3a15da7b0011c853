"""Byte-identical on every checkout: two clones at different paths, each with its own fresh
virtual environment installed from constraints.txt, reproduce both examples (the root's and
examples/fraud-detection's) to byte-identical reports and outputs, and leave both `dvc.lock`s and
the rest of git exactly as committed (marked slow: environments and pipelines).

Under CI this repository is itself such a clone — `.ci/run` made its `.venv` and ran
`dvc repro` in it and in the fraud example — so one more clone, at another path with its own
environment, is compared with it. Elsewhere (a working tree with changes, or not reproduced) the
test makes both clones.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nbops.testing import fresh_venv, run

from ..conftest import REPO

pytestmark = pytest.mark.slow
FRAUD = "examples/fraud-detection"
OUTPUT_DIRS = tuple(f"{base}{d}" for base in ("", f"{FRAUD}/") for d in ("reports", "metrics", "plots", "models", "data"))


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def _head() -> str | None:
    done = _git(REPO, "rev-parse", "HEAD")
    return done.stdout.strip() if done.returncode == 0 else None


def outputs(root: Path, env) -> dict[str, bytes]:
    """What `dvc repro` produced: the files DVC keeps out of git under the output folders."""
    listed = run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--", *OUTPUT_DIRS], root, env)
    return {path: (root / path).read_bytes() for path in listed.stdout.split()}


def quick_start_clone(clone: Path, env) -> dict[str, bytes]:
    """Clone the committed HEAD to `clone`, give it its own .venv (the locked versions of `.[dev]`)
    and run `dvc repro` there, as the quick start's first line does, and in the fraud example."""
    run(["git", "clone", "-q", str(REPO), str(clone)], clone.parent, env)
    assert run(["git", "rev-parse", "HEAD"], clone, env).stdout.strip() == _head()
    fresh_venv(clone / ".venv", env, "-c", str(clone / "constraints.txt"), "-e", f"{clone}[examples]")  # the fraud example needs pandera, pyarrow
    clone_env = {**env, "PATH": os.pathsep.join([str(clone / ".venv/bin"), env["PATH"]]), "VIRTUAL_ENV": str(clone / ".venv")}
    assert run(["which", "nbops"], clone, clone_env).stdout.strip() == str(clone / ".venv/bin/nbops")
    run(["dvc", "repro"], clone, clone_env, timeout=1800)
    run(["dvc", "repro"], clone / FRAUD, clone_env, timeout=1800)
    assert run(["git", "status", "--porcelain"], clone, clone_env).stdout == "", f"{clone}: dvc.lock or a notebook changed"
    return outputs(clone, clone_env)


def _reproduced_clean(root: Path, env) -> bool:
    """`root` is a checkout whose committed pipeline has been reproduced and left git clean."""
    if _git(root, "status", "--porcelain").stdout != "" or not (root / ".venv/bin/dvc").exists():
        return False
    for project in (root, root / FRAUD):
        status = run([str(root / ".venv/bin/dvc"), "status"], project, env, check=False)
        if status.returncode != 0 or "up to date" not in status.stdout:
            return False
    return True


@pytest.mark.timeout(3600)
@pytest.mark.skipif(_head() is None, reason="not a git checkout of nbops: nothing to clone")
def test_two_clones_reproduce_byte_identical_outputs_and_leave_git_clean(tmp_path, env):
    if _reproduced_clean(REPO, env):  # CI: the quick start ran here, in a fresh clone
        first_root, first = REPO, outputs(REPO, env)
    else:
        first_root = tmp_path / "a" / "nbops"
        first_root.parent.mkdir()
        first = quick_start_clone(first_root, env)
    # another path, of another length and depth: an absolute path anywhere shows as a difference
    second_root = tmp_path / "somewhere-else" / "much" / "deeper" / "clone"
    second_root.parent.mkdir(parents=True)
    second = quick_start_clone(second_root, env)

    assert {"reports/ingest.ipynb", "reports/evaluate.ipynb", "models/failure-predictor.skops",
            "metrics/evaluate.json", "data/raw.csv", f"{FRAUD}/models/fraud-detector.skops",
            f"{FRAUD}/metrics/evaluate.json", f"{FRAUD}/reports/train.ipynb"} <= set(first)
    assert sorted(first) == sorted(second)
    differing = [path for path in first if first[path] != second[path]]
    assert differing == [], f"outputs differ between {first_root} and {second_root}: {differing}"
    for path, data in second.items():
        assert str(second_root).encode() not in data, f"{path} holds its clone's path"
