"""Continuous ingestion in the example, with real git, DVC and kernels (marked slow): a fresh
clone reproduces the committed dvc.lock byte for byte; a new batch in the training window
retrains everything after it; a batch outside the window re-runs ingest alone."""

from __future__ import annotations

import shutil

import pytest

from nbops.testing import command_env, copy_project, init_repo, run, set_params

from ..conftest import REPO

pytestmark = pytest.mark.slow

DOWNSTREAM = ("featurize", "train", "evaluate")


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example as a fresh clone sees it: its files and the committed dvc.lock, nothing else."""
    home = tmp_path_factory.mktemp("ingestion")
    env = command_env(home)
    project = copy_project(REPO, home / "project")
    shutil.copy2(REPO / "dvc.lock", project / "dvc.lock")
    init_repo(project, env)
    first = run(["dvc", "repro"], project, env)
    return project, env, first


def ran(result) -> list[str]:
    return [line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage '")]


def test_a_fresh_clone_seeds_the_batches_and_reproduces_the_committed_lock(example):
    project, env, first = example
    assert ran(first) == ["batches", "ingest", *DOWNSTREAM]
    assert "wrote 30 batches to data/batches: 2024-01-01 … 2024-01-30" in first.stdout
    assert run(["git", "status", "--porcelain", "dvc.lock"], project, env).stdout == ""  # byte-identical
    assert "up to date" in run(["dvc", "status"], project, env).stdout


def test_a_new_batch_in_the_window_retrains_what_depends_on_it(example):
    project, env, _ = example
    raw_before = (project / "data/raw.csv").read_bytes()
    added = run(["python", "-m", "plantsim", "simulate"], project, env)
    assert "wrote 1 batch to data/batches: 2024-01-31" in added.stdout
    status = run(["dvc", "status"], project, env).stdout
    assert "batches:\n\tchanged outs:\n\t\tmodified:           data/batches" in status
    assert "ingest:\n\tchanged deps:\n\t\tmodified:           data/batches" in status
    result = run(["dvc", "repro"], project, env)
    assert ran(result) == ["batches", "ingest", *DOWNSTREAM]
    raw = (project / "data/raw.csv").read_text().splitlines()
    assert raw[1].startswith("2024-01-02,") and raw[-1].startswith("2024-01-31,")  # the window moved one day
    assert (project / "data/raw.csv").read_bytes() != raw_before
    assert "up to date" in run(["dvc", "status"], project, env).stdout
    lock = (project / "dvc.lock").read_text()
    assert "nfiles: 31" in lock  # DVC recorded (and cached) the batch that arrived
    run(["git", "commit", "-q", "-am", "a new day"], project, env)


def test_a_batch_outside_the_window_changes_nothing_after_ingest(example):
    project, env, _ = example
    raw_before = (project / "data/raw.csv").read_bytes()
    # a late delivery of a day long before the window, and (with the window pinned) a newer day
    shutil.copy2(project / "data/batches/2024-01-05.csv", project / "data/batches/2023-11-30.csv")
    result = run(["dvc", "repro"], project, env)
    assert ran(result) == ["batches", "ingest"]
    for stage in DOWNSTREAM:
        assert f"Stage '{stage}' didn't change, skipping" in result.stdout
    assert (project / "data/raw.csv").read_bytes() == raw_before
    assert "30 of 32 batches, 2024-01-02 to 2024-01-31" in (project / "reports/ingest.ipynb").read_text()

    set_params(project, {"ingest": {"until": "2024-01-31"}})
    run(["python", "-m", "plantsim", "simulate", "--days", "2"], project, env)
    result = run(["dvc", "repro"], project, env)
    assert ran(result) == ["batches", "ingest"]
    assert (project / "data/raw.csv").read_bytes() == raw_before
    assert "up to date" in run(["dvc", "status"], project, env).stdout
