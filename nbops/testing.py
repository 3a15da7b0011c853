"""Helpers for testing nbops projects with real git, DVC and kernels (ours and our users').

    from nbops.testing import command_env, copy_project, init_repo, run

They build throwaway projects in a temporary folder: a real git repository with DVC
initialised, an environment in which `nbops` and `dvc` resolve to this interpreter's, a git
identity (a CI machine may have none) and DVC's site cache inside the folder (DVC otherwise
writes under /var/tmp).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

#: What makes up the example project beside the library (copied by `copy_project`).
PROJECT_FILES = ("notebooks", "plantsim", "params.yaml", "dvc.yaml", "jupytext.toml")


def command_env(home: str | os.PathLike[str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for subprocesses: this interpreter's bin first on PATH, git identity,
    DVC's site cache under `home`, and no NBOPS_* variables leaking in from the caller."""
    home = Path(home)
    env = {key: value for key, value in os.environ.items() if not key.startswith("NBOPS_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({
        "GIT_AUTHOR_NAME": "nbops tests", "GIT_AUTHOR_EMAIL": "tests@nbops.invalid",
        "GIT_COMMITTER_NAME": "nbops tests", "GIT_COMMITTER_EMAIL": "tests@nbops.invalid",
        "DVC_SITE_CACHE_DIR": str(home / ".dvc-site-cache"),
        "DVC_NO_ANALYTICS": "1",
        "PYTHONWARNINGS": "ignore",
    })
    env.pop("JPY_SESSION_NAME", None)
    if extra:
        env.update(extra)
    return env


def run(
    args: Sequence[str], cwd: str | os.PathLike[str], env: Mapping[str, str], *, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; on unexpected failure show what it printed."""
    result = subprocess.run(
        list(args), cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def copy_project(source: str | os.PathLike[str], dest: str | os.PathLike[str], files: Sequence[str] = PROJECT_FILES) -> Path:
    """Copy the project files of `source` (notebooks, params.yaml, dvc.yaml) into `dest`."""
    source, dest = Path(source), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def init_repo(path: str | os.PathLike[str], env: Mapping[str, str], *, dvc: bool = True, commit: bool = True) -> Path:
    """Make `path` a git repository (with DVC unless `dvc=False`) and commit what is in it."""
    path = Path(path)
    run(["git", "init", "-q", "-b", "main"], path, env)
    if dvc:
        run(["dvc", "init", "-q"], path, env)
        run(["dvc", "config", "core.autostage", "true"], path, env)
    gitignore = path / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(".nbops/\nregistry/\n__pycache__/\n.ipynb_checkpoints/\n", encoding="utf-8")
    if commit:
        run(["git", "add", "-A"], path, env)
        run(["git", "commit", "-q", "-m", "initial project"], path, env)
    return path


def set_params(project: str | os.PathLike[str], values: Mapping[str, Mapping[str, Any]]) -> None:
    """Update sections of params.yaml (`{"train": {"n_estimators": 20}}`)."""
    path = Path(project) / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    params = params or {}
    for section, entries in values.items():
        params.setdefault(section, {}).update(entries)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def write_notebook(
    path: str | os.PathLike[str],
    parameters: Sequence[str] = (),
    body: Sequence[str] = (),
    *,
    outputs: bool = False,
) -> Path:
    """Write a small .ipynb: a code cell tagged `parameters` per source in `parameters`, then a
    code cell per source in `body`; with `outputs`, each code cell carries an output as if run."""
    import json

    cells = []
    for index, source in enumerate([*parameters, *body]):
        cell: dict[str, Any] = {
            "cell_type": "code", "execution_count": None, "id": f"cell-{index}",
            "metadata": {"tags": ["parameters"]} if index < len(parameters) else {},
            "outputs": [], "source": source,
        }
        if outputs:
            cell["execution_count"] = index + 1
            cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": f"ran cell {index}\n"}]
        cells.append(cell)
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")
    return path
