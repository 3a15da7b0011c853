"""The notebook git filter (nbops.authoring.nbstripout) with real git: the committed notebooks are its
output, and a clone it is set up in stays clean through checkouts, copies and saves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid

import pytest

from nbops.authoring import nbstripout
from nbops.authoring.server_extension import after_save
from nbops.testing import PROJECT_FILES, copy_project, init_repo, run

from ..conftest import REPO


def clean(data: bytes) -> bytes:
    """What git stores: the filter's clean command, as git runs it (stdin to stdout)."""
    return subprocess.run(
        [sys.executable, "-m", "nbops.authoring.nbstripout"], input=data, capture_output=True, check=True, cwd=REPO
    ).stdout


def filtered_notebooks(root) -> list[str]:
    """The tracked notebooks .gitattributes puts through the filter."""
    def git(*args: str) -> list[str]:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.split("\0")

    attrs = git("check-attr", "-z", "filter", "--", *filter(None, git("ls-files", "-z", "--", "*.ipynb")))
    return [attrs[i] for i in range(0, len(attrs) - 2, 3) if attrs[i + 2] == "nbstripout"]


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout of nbops")
def test_the_committed_notebooks_are_exactly_what_the_filter_stores():
    notebooks = filtered_notebooks(REPO)
    fraud = "examples/fraud-detection/notebooks"
    assert set(notebooks) >= {
        *(f"notebooks/{n}.ipynb" for n in ("evaluate", "featurize", "ingest", "train")),
        *(f"{fraud}/{n}.ipynb" for n in ("generate", "validate", "featurize", "train", "evaluate")),
    }
    for path in notebooks:
        stored = subprocess.run(["git", "show", f":{path}"], cwd=REPO, capture_output=True, check=True).stdout
        assert clean(stored) == stored, f"{path} is not what the filter stores: `python -m nbops.authoring.nbstripout < {path}`"
        # a checkout writes the smudged form, which the filter stores back unchanged
        assert clean(nbstripout.smudge(stored)) == stored
        assert [c["id"] for c in json.loads(stored)["cells"]] == [str(i) for i in range(len(json.loads(stored)["cells"]))]


def test_smudge_fills_in_language_info_of_python_notebooks_only():
    nb = {"cells": [], "metadata": {"kernelspec": {"name": "python3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    smudged = json.loads(nbstripout.smudge(json.dumps(nb).encode()))
    assert smudged["metadata"]["language_info"]["version"] == sys.version.split()[0]
    other = dict(nb, metadata={"kernelspec": {"name": "ir", "language": "R"}})
    for untouched in (json.dumps(other).encode(), b"not json", b'{"no": "cells"}'):
        assert nbstripout.smudge(untouched) == untouched


def test_git_filter_sets_up_a_clone_that_stays_clean(tmp_path, env):
    project = copy_project(REPO, tmp_path / "project", files=(*PROJECT_FILES, ".gitattributes"))
    init_repo(project, env)  # committed without the filter: the files as they are in this checkout
    attributes = (project / ".gitattributes").read_bytes()
    notebook = project / "notebooks/train.ipynb"
    stored = notebook.read_bytes()

    done = run(["nbops", "git-filter"], project, env)
    assert "checked out again through the filter" in done.stdout and "notebooks/train.ipynb" in done.stdout
    config = {key: run(["git", "config", key], project, env).stdout.strip() for key in nbstripout.filter_config()}
    assert config["filter.nbstripout.clean"].endswith('" -m nbops.authoring.nbstripout')
    assert config["filter.nbstripout.smudge"].endswith("-m nbops.authoring.nbstripout --smudge")
    assert config["filter.nbstripout.extrakeys"] == nbstripout.EXTRA_KEYS and config["filter.nbstripout.required"] == "true"
    assert (project / ".gitattributes").read_bytes() == attributes  # it names the filter already
    # the unmodified notebook was checked out again: it now holds this kernel's language_info
    assert json.loads(notebook.read_text())["metadata"]["language_info"] == nbstripout.language_info()
    assert run(["git", "status", "--porcelain"], project, env).stdout == ""

    # a copy of the clone elsewhere (every file's stat info changes), and a plain checkout: clean
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    assert run(["git", "status", "--porcelain"], copy, env).stdout == ""
    run(["git", "checkout", "-q", "-b", "other"], project, env)
    run(["git", "checkout", "-q", "main"], project, env)
    assert run(["git", "status", "--porcelain"], project, env).stdout == ""

    # what a run-and-save in JupyterLab changes: outputs, counts, timings, ids, metadata
    nb = json.loads(notebook.read_text())
    for index, cell in enumerate(nb["cells"]):
        cell["id"] = uuid.uuid4().hex[:8]
        cell["metadata"]["jupyter"] = {"source_hidden": False}
        if cell["cell_type"] == "code":
            cell["execution_count"] = index + 1
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["ran\n"]}]
            cell["metadata"]["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    nb["metadata"]["jupytext"] = {"text_representation": {"jupytext_version": "9.9"}}
    notebook.write_text(json.dumps(nb, indent=2))
    # git takes a file whose size changed as modified without asking the filter; nbops' Jupyter
    # server extension runs this after every save, so git compares the content through the filter
    after_save({"type": "notebook"}, str(notebook))
    assert run(["git", "status", "--porcelain"], project, env).stdout == ""
    assert run(["git", "diff", "--cached", "--quiet"], project, env).returncode == 0  # nothing was staged
    # ... while a change of code shows
    nb["cells"][-1]["source"] += "\nprint('changed')"
    notebook.write_text(json.dumps(nb, indent=2))
    after_save({"type": "notebook"}, str(notebook))
    assert run(["git", "status", "--porcelain"], project, env).stdout == " M notebooks/train.ipynb\n"
    assert stored != notebook.read_bytes()


def test_git_filter_adds_the_attributes_where_none_name_it_and_refuses_outside_git(tmp_path, env):
    project = tmp_path / "plain"
    project.mkdir()
    init_repo(project, env, dvc=False)
    run(["nbops", "git-filter"], project, env)
    assert (project / ".gitattributes").read_text() == nbstripout.ATTRIBUTES
    outside = tmp_path / "outside"
    outside.mkdir()
    refused = run(["nbops", "git-filter"], outside, {**env, "GIT_CEILING_DIRECTORIES": str(tmp_path)}, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == ["nbops: error: .: not inside a git repository; `git init` first (or `nbops init`)"]


def test_the_readme_setup_line_configures_the_filter_nbops_init_sets_up(tmp_path, env, monkeypatch):
    from nbops.authoring.scaffold import init_project

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "the filter that keeps notebook outputs out of git: `nbops git-filter`" in readme
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, env[var])
    init_project(tmp_path / "made-by-init")
    clone = tmp_path / "set-up-by-hand"
    clone.mkdir()
    init_repo(clone, env, dvc=False)
    nbstripout.install(clone)  # what `nbops git-filter` runs

    def filter_config(root):
        listed = run(["git", "config", "--local", "--get-regexp", r"^(filter\.nbstripout|diff\.ipynb)\."], root, env)
        return sorted(listed.stdout.splitlines())

    assert filter_config(tmp_path / "made-by-init") == filter_config(clone)
    assert len(filter_config(clone)) == len(nbstripout.filter_config())
