"""`nbops init` without running anything: the files, the workflow, refusing to overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.core.params import load_yaml, parse_yaml
from nbops.testing import command_env, run


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    home = tmp_path_factory.mktemp("init")
    env = command_env(home)
    result = run(["nbops", "init", "demo"], home, env)
    assert "created the project in demo/" in result.stdout
    return home / "demo", env


def steps(job: dict) -> dict[str, str]:
    return {step.get("name") or step.get("uses"): step.get("run", "") for step in job["steps"]}


def test_workflow_is_valid_yaml_with_the_expected_steps(demo):
    project, _ = demo
    workflow = parse_yaml((project / ".github/workflows/nbops.yml").read_text(), "nbops.yml")
    assert set(workflow["on"]) == {"push", "pull_request", "workflow_dispatch", "schedule", "repository_dispatch"}
    assert workflow["on"]["repository_dispatch"] == {"types": ["drift-detected"]}
    pipeline = workflow["jobs"]["pipeline"]
    runs = list(steps(pipeline).values())
    commands = [next((r for r in runs if needle in r), None) for needle in (
        'pip install "$NBOPS_REQUIREMENT" -r requirements.txt', "dvc pull", "dvc repro", "pytest --nbval-lax",
        "nbops check", "nbops promote classifier --dry-run", "nbops report",
    )]
    assert None not in commands, runs
    assert [runs.index(c) for c in commands] == sorted(runs.index(c) for c in commands)  # in this order
    assert "dvc remote list" in commands[1]  # pulls only when a remote is configured
    assert '>> "$GITHUB_STEP_SUMMARY"' in commands[-1]
    report_step = next(s for s in pipeline["steps"] if "nbops report" in s.get("run", ""))
    assert report_step["if"] == "always()"
    assert pipeline["steps"][0]["with"]["fetch-depth"] == 0  # history for `report --rev`
    # nbops from the index unless the repository variable names a git URL or a wheel
    assert workflow["env"]["NBOPS_REQUIREMENT"] == "${{ vars.NBOPS_REQUIREMENT || 'nbops[test,promote,serve]' }}"


def test_the_repository_starts_on_the_branch_the_workflow_runs_on(demo):
    project, env = demo
    workflow = parse_yaml((project / ".github/workflows/nbops.yml").read_text(), "nbops.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert run(["git", "symbolic-ref", "--short", "HEAD"], project, env).stdout.strip() == "main"
    sweep = workflow["jobs"]["sweep"]
    assert len(sweep["strategy"]["matrix"]["C"]) > 1
    assert any("dvc exp run -S \"train.C=${{ matrix.C }}\"" in r for r in steps(sweep).values())
    retrain = workflow["jobs"]["retrain"]
    runs = list(steps(retrain).values())
    commands = [next((r for r in runs if needle in r), None) for needle in (
        "dvc pull", "scripts/new-data", "dvc repro", "git commit", "dvc push", "nbops promote classifier --to production",
    )]
    assert None not in commands, runs
    assert [runs.index(c) for c in commands] == sorted(runs.index(c) for c in commands)  # in this order
    assert retrain["permissions"] == {"contents": "write"} and workflow["permissions"] == {"contents": "read"}


def test_project_files(demo):
    project, env = demo
    for path in (".gitignore", ".dvcignore", ".gitattributes", "jupytext.toml", ".pre-commit-config.yaml",
                 "requirements.txt", "pytest.ini", "README.md", "tests/test_project.py",
                 "notebooks/train.ipynb", "notebooks/train.py", ".dvc/config"):
        assert (project / path).is_file(), path
    assert (project / ".git").is_dir()
    hooks = load_yaml(project / ".pre-commit-config.yaml")["repos"][0]["hooks"]
    assert [h["id"] for h in hooks] == ["nbstripout", "jupytext-sync", "nbops-check"]
    stage = load_yaml(project / "dvc.yaml")["stages"]["train"]
    assert stage["cmd"] == "nbops run notebooks/train.py" and stage["deps"] == ["notebooks/train.py"]
    assert stage["params"] == ["train.n_samples", "train.C", "train.seed"]
    assert load_yaml(project / "params.yaml")["train"] == {"n_samples": 2000, "C": 1.0, "seed": 0}
    assert load_yaml(project / "params.yaml")["nbops"] == {"timeout": "1h"}  # a hung cell cannot hang CI
    assert "autostage = true" in (project / ".dvc/config").read_text()
    # git stores notebooks stripped: the filter is set up in this clone
    assert "nbstripout" in run(["git", "config", "filter.nbstripout.clean"], project, env).stdout
    assert run(["git", "check-attr", "filter", "notebooks/train.ipynb"], project, env).stdout.strip().endswith("nbstripout")
    assert run(["nbops", "check"], project, env).returncode == 0
    assert oct((project / "dvc.yaml").stat().st_mode & 0o777) == "0o644"


def test_init_refuses_to_overwrite_unless_forced(demo):
    project, env = demo
    (project / "params.yaml").write_text("mine: {}\n")
    refused = run(["nbops", "init", str(project)], project.parent, env, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    error = refused.stderr.strip()
    assert error.startswith(f"nbops: error: {project}: would overwrite ") and "params.yaml" in error
    assert "dvc.yaml" in error and "--force" in error
    assert (project / "params.yaml").read_text() == "mine: {}\n"
    run(["nbops", "init", "--force", str(project)], project.parent, env)
    assert "train" in load_yaml(project / "params.yaml")
