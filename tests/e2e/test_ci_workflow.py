"""The workflow `nbops init` generates, run as GitHub Actions would run it on a push to main: every
`run:` step of the `pipeline` job in order, with bash -e, in a fresh virtual environment whose
nbops is installed by the workflow's own install step from a wheel built from this checkout
(the repository variable NBOPS_REQUIREMENT names it, as a team whose nbops is not on an index
would set it). Slow: a wheel build, a fresh install and the whole pipeline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.core.params import parse_yaml
from nbops.testing import command_env, run

from ..conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a fresh install: minutes on a loaded machine


def github_expression(expression: str, variables: dict[str, str]) -> str:
    """The few expressions the workflow uses, evaluated as on a push (no pull request)."""
    expression = expression.strip()
    if expression == "always()":
        return "true"
    if expression == "github.event_name == 'push' && github.ref == 'refs/heads/main'":
        return "true"
    found = re.fullmatch(r"(vars\.\w+|github\.event\.pull_request\.base\.sha) \|\| '([^']*)'", expression)
    if found:
        name = found.group(1).removeprefix("vars.")
        return variables.get(name) or found.group(2)
    raise AssertionError(f"an expression this test does not know how to evaluate: {expression}")


def resolve(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: github_expression(m.group(1), variables), text)


def test_the_generated_workflow_runs_as_written_with_nbops_from_a_wheel(tmp_path):
    home = tmp_path
    dev_env = command_env(home)
    run(["nbops", "init", "demo"], home, dev_env)
    project = home / "demo"
    run(["git", "add", "-A"], project, dev_env)
    run(["git", "commit", "-q", "-m", "nbops init"], project, dev_env)  # the first commit: no HEAD~1
    workflow = parse_yaml((project / ".github/workflows/nbops.yml").read_text(), "nbops.yml")
    branch = run(["git", "symbolic-ref", "--short", "HEAD"], project, dev_env).stdout.strip()
    assert branch in workflow["on"]["push"]["branches"]  # a push of this repository triggers the workflow

    wheels = home / "wheels"
    # pip builds nbops' wheel with its build backend in an isolated environment, as a user would
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)], home, dev_env, timeout=600)
    [wheel] = wheels.glob("nbops-*.whl")
    venv = home / "runner-venv"
    run([sys.executable, "-m", "venv", str(venv)], home, dev_env)
    try:
        _run_the_pipeline_job(workflow, project, home, venv, wheel, dev_env)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 1 GB: not left for pytest's temporary folders to keep


def _run_the_pipeline_job(workflow: dict, project: Path, home: Path, venv: Path, wheel: Path, dev_env: dict[str, str]) -> None:
    # The runner: the fresh venv first on PATH (as actions/setup-python leaves it), nothing of ours.
    ours = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != ours)
    variables = {"NBOPS_REQUIREMENT": f"{wheel}[test,promote,serve]"}
    env = {key: value for key, value in dev_env.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update({"PATH": f"{venv / 'bin'}{os.pathsep}{path}", "CI": "true", "GITHUB_ACTIONS": "true",
                "GITHUB_STEP_SUMMARY": str(home / "summary.md")})
    env.update({key: resolve(str(value), variables) for key, value in (workflow.get("env") or {}).items()})
    assert env["NBOPS_REQUIREMENT"] == f"{wheel}[test,promote,serve]"

    ran = []
    for step in workflow["jobs"]["pipeline"]["steps"]:
        if "run" not in step:
            continue  # `uses:` steps: the checkout and Python are what this test set up
        if "if" in step and resolve("${{ " + step["if"] + " }}", variables) != "true":
            continue
        command = resolve(step["run"], variables)
        result = subprocess.run(["bash", "--noprofile", "--norc", "-e", "-c", command], cwd=project, env=env,
                                capture_output=True, text=True, timeout=1500)
        assert result.returncode == 0, f"step {step.get('name')!r} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        ran.append(step.get("name", command))
    assert len(ran) == len([s for s in workflow["jobs"]["pipeline"]["steps"] if "run" in s])

    shown = subprocess.run(["python", "-c", "import nbops; print(nbops.__file__)"], cwd=project,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert shown.startswith(str(venv))  # the steps ran the nbops the workflow installed, not this checkout
    summary = (home / "summary.md").read_text()
    assert summary.startswith("## nbops report\n")
    assert "Nothing to compare with: `HEAD~1` does not exist" in summary  # the first push of a new project
    assert (project / "metrics/train.json").exists()
