"""`nbops report` on inputs that used to give a traceback or an unclear note: a malformed
params.yaml, a revision a first commit has no ancestor for, a revision git does not know.
A real git repository with DVC; the CLI in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.pipeline.stages import add_stage
from nbops.testing import command_env, init_repo, run, write_notebook


@pytest.fixture(scope="module")
def first_commit(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    home = tmp_path_factory.mktemp("report")
    env = command_env(home)
    project = home / "project"
    project.mkdir()
    (project / "params.yaml").write_text("")
    write_notebook(project / "notebooks/train.ipynb", ["n = 3"], body=["import nbops\nnbops.log_metric('n', n)"])
    add_stage(project / "notebooks/train.ipynb", root=project)
    init_repo(project, env)  # one commit: HEAD has no parent
    return project, env


def test_head_1_on_a_first_commit_says_there_is_nothing_to_compare(first_commit):
    project, env = first_commit
    result = run(["nbops", "report", "--rev", "HEAD~1"], project, env)
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[2].startswith("_Nothing to compare with: `HEAD~1` does not exist, because `HEAD` (")
    assert lines[2].endswith(") has no such ancestor (it is the first commit). Current values only._")
    assert "The workspace compared with" not in result.stdout


def test_an_unknown_revision_is_one_line(first_commit):
    project, env = first_commit
    result = run(["nbops", "report", "--rev", "origin/mian"], project, env, check=False)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ("nbops: error: --rev origin/mian: no such revision in this repository; give a branch, tag "
                             "or commit git knows (`git log --oneline` lists commits)\n")


def test_a_malformed_params_yaml_names_file_and_line(first_commit):
    project, env = first_commit
    params = project / "params.yaml"
    good = params.read_text()
    params.write_text("train:\n  n: 3\n   m: 1\n")
    try:
        result = run(["nbops", "report"], project, env, check=False)
    finally:
        params.write_text(good)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "nbops: error: params.yaml:3:5: mapping values are not allowed in this context (fix the YAML syntax at that line)\n"
