"""The retraining job of the GitHub workflows, run step by step in real git + DVC projects
(marked slow): this repository's `.github/workflows/retrain.yml` on the example, and the one
`nbops init` generates.

Offline, with everything the job touches standing in locally: `origin` is a bare git repository,
the DVC remote a folder, the registry (NBOPS_REGISTRY) a folder. Skipped steps: `uses:` actions
(the test made the checkout itself; its interpreter is the set-up Python) and `pip install`
(needs the network; this environment has the project installed). Every other `run:` step runs
as written, `if:` conditions and step outputs included.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import pytest

from nbops.core.params import parse_yaml
from nbops.testing import command_env, copy_project, init_repo, run, set_params

from ..conftest import REPO

pytestmark = pytest.mark.slow

EXAMPLE_WORKFLOW = REPO / ".github/workflows/retrain.yml"


def run_job(
    workflow: Path, job: str, checkout: Path, env: Mapping[str, str], expressions: Mapping[str, str], tmp: Path
) -> list[str]:
    """Run a job's `run:` steps in `checkout` as a runner would; returns the names of the steps run.

    `expressions` gives the value of every `${{ … }}` the job's env uses (an unknown one fails the
    test, so nothing is silently left unresolved). A step that fails fails the test."""
    spec = parse_yaml(workflow.read_text(encoding="utf-8"), workflow.name)["jobs"][job]
    outputs: dict[str, dict[str, str]] = {}
    job_env = {**env, "GITHUB_REF_NAME": "main", "GITHUB_RUN_ID": "4242",
               "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"), "GITHUB_EVENT_NAME": expressions["github.event_name"]}
    job_env.update(resolve(spec.get("env", {}), expressions))
    ran = []
    for index, step in enumerate(spec["steps"]):
        command = step.get("run")
        if command is None or command.startswith("pip install"):
            continue
        if "if" in step and not condition(step["if"], outputs, expressions):
            continue
        assert "${{" not in command, f"step {step.get('name')!r}: an expression inside `run:` (use env)"
        output_file = tmp / f"output-{index}"
        output_file.write_text("")
        step_env = {**job_env, **resolve(step.get("env", {}), expressions), "GITHUB_OUTPUT": str(output_file)}
        run(["bash", "-e", "-o", "pipefail", "-c", command], checkout, step_env)
        if "id" in step:
            outputs[step["id"]] = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
        ran.append(step["name"])
    return ran


def resolve(values: Mapping[str, Any], expressions: Mapping[str, str]) -> dict[str, str]:
    def one(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        assert expression in expressions, f"the test gives no value for ${{{{ {expression} }}}}"
        return expressions[expression]

    return {key: re.sub(r"\$\{\{(.*?)\}\}", one, str(value)) for key, value in values.items()}


def condition(text: str, outputs: Mapping[str, Mapping[str, str]], expressions: Mapping[str, str]) -> bool:
    """GitHub's `if:` for the forms the workflows use: step outputs, `!cancelled()`, event names, &&, ||."""
    expr = text.strip().removeprefix("${{").removesuffix("}}")
    expr = re.sub(r"steps\.([\w-]+)\.outputs\.([\w-]+)", lambda m: repr(outputs.get(m.group(1), {}).get(m.group(2), "")), expr)
    expr = expr.replace("!cancelled()", "True").replace("github.event_name", repr(expressions["github.event_name"]))
    expr = expr.replace("&&", " and ").replace("||", " or ").replace("!=", " __NE__ ").replace("!", " not ")
    return bool(eval(expr.replace("__NE__", "!="), {"__builtins__": {}}, {}))  # noqa: S307 - our own workflow text


def clone(origin: Path, dest: Path, env: Mapping[str, str]) -> Path:
    run(["git", "clone", "-q", str(origin), str(dest)], origin.parent, env)
    return dest


def models(checkout: Path, env: Mapping[str, str]) -> list[dict[str, Any]]:
    return json.loads(run(["nbops", "models", "list", "--json"], checkout, env).stdout)


@pytest.fixture(scope="module")
def example_origin(tmp_path_factory):
    """The example pushed to a bare `origin` with a DVC remote folder, as after its owner's first
    `dvc repro && dvc push && git push` (small settings: 9 days in the window, 50 trees)."""
    home = tmp_path_factory.mktemp("retrain")
    env = command_env(home, {"NBOPS_REGISTRY": ""})
    project = copy_project(REPO, home / "owner", files=("notebooks", "plantsim", "params.yaml", "dvc.yaml", "jupytext.toml", ".github"))
    set_params(project, {
        "ingest": {"window_days": 9}, "train": {"max_iter": 50},
        "promote": {"thresholds": {"roc_auc": ">= 0.8", "recall": ">= 0.3"}, "tolerance": 1.0},
    })
    init_repo(project, env)
    run(["dvc", "remote", "add", "-d", "store", str(home / "dvc-remote")], project, env)
    run(["dvc", "repro"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "-m", "the example, reproduced"], project, env)
    run(["dvc", "push"], project, env)
    run(["git", "init", "-q", "--bare", "-b", "main", str(home / "origin.git")], home, env)
    run(["git", "push", "-q", str(home / "origin.git"), "main"], project, env)
    return home, env


EXPECTED_STEPS = [
    "Pull data and cached results from the DVC remote (when one is configured)",
    "Bring in the new data (the simulated plant's next days)",
    "Retrain what the new data changed (dvc repro)",
    "Commit the run (dvc.lock and DVC's data pointers)",
    "Share the data, then the commit (so whoever fetches the commit can pull its data)",
    "Promote to production when the gates agree",
    "Write the report to the job summary (nbops report)",
]


@pytest.fixture(scope="module")
def first_runner(example_origin, tmp_path_factory):
    """Runner 1 on a schedule: pulls the owner's batches and results, gets one new day, retrains,
    promotes the first champion into a registry folder shared like an S3 registry."""
    home, env = example_origin
    tmp = tmp_path_factory.mktemp("runner-1")
    expressions = {
        "github.event_name": "schedule", "vars.NBOPS_REGISTRY": str(home / "registry"),
        "inputs.days || '1'": "1", "inputs.scenario || ''": "",
    }
    checkout = clone(home / "origin.git", tmp / "checkout", env)
    ran = run_job(EXAMPLE_WORKFLOW, "retrain", checkout, env, expressions, tmp)
    return checkout, ran, expressions, tmp


def test_the_example_retrain_job_retrains_on_a_new_day_pushes_and_promotes(example_origin, first_runner):
    home, env = example_origin
    checkout, ran, _, tmp = first_runner
    assert ran == EXPECTED_STEPS
    assert (checkout / "data/batches/2024-01-31.csv").exists()
    assert len(list((checkout / "data/batches").glob("*.csv"))) == 31
    head = run(["git", "rev-parse", "HEAD"], checkout, env).stdout.strip()
    assert run(["git", "rev-parse", "main"], home / "origin.git", env).stdout.strip() == head  # pushed
    log = run(["git", "show", "--stat", "--format=%s", "HEAD"], checkout, env).stdout
    assert log.startswith("retrain: dvc repro on new data (run 4242)") and "dvc.lock" in log
    [model] = models(checkout, {**env, "NBOPS_REGISTRY": str(home / "registry")})
    assert (model["name"], model["versions"], model["stages"]) == ("failure-predictor", ["0.1.0"], {"production": "0.1.0"})
    summary = (tmp / "summary.md").read_text()
    assert summary.startswith("## nbops report") and "**Pipeline: up to date**" in summary


def test_a_second_runner_continues_from_the_remote_and_meets_the_champion(example_origin, first_runner, tmp_path):
    """A fresh machine: the DVC remote gives it runner 1's 31 batches and results, so only the new
    day's retraining runs, and the challenger meets the champion in the shared registry."""
    home, env = example_origin
    _, _, expressions, _ = first_runner
    registry = home / "registry"
    second = clone(home / "origin.git", tmp_path / "runner-2", env)
    run(["dvc", "pull"], second, env)
    assert "up to date" in run(["dvc", "status"], second, env).stdout
    assert run_job(EXAMPLE_WORKFLOW, "retrain", second, env, expressions, tmp_path) == EXPECTED_STEPS
    assert len(list((second / "data/batches").glob("*.csv"))) == 32
    head = run(["git", "rev-parse", "HEAD"], second, env).stdout.strip()
    assert run(["git", "rev-parse", "main"], home / "origin.git", env).stdout.strip() == head
    [model] = models(second, {**env, "NBOPS_REGISTRY": str(registry)})
    assert model["stages"] == {"production": "0.2.0"}
    manifest = json.loads((registry / "failure-predictor/0.2.0/manifest.json").read_text())
    assert manifest["lineage"]["git"]["commit"] == head and not manifest["lineage"]["git"]["dirty"]
    assert json.loads((registry / "failure-predictor/0.1.0/manifest.json").read_text())["lineage"]["git"]["commit"] != head

    # whoever clones main now can pull exactly the data and results it records
    reader = clone(home / "origin.git", tmp_path / "reader", env)
    run(["dvc", "pull"], reader, env)
    assert "up to date" in run(["dvc", "status"], reader, env).stdout
    assert len(list((reader / "data/batches").glob("*.csv"))) == 32


def test_the_generated_retrain_job_commits_promotes_and_then_finds_nothing_new(tmp_path):
    env = command_env(tmp_path, {"NBOPS_REGISTRY": ""})
    run(["nbops", "init", "demo"], tmp_path, env)
    project = tmp_path / "demo"
    run(["dvc", "remote", "add", "-d", "store", str(tmp_path / "dvc-remote")], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "-m", "nbops init"], project, env)
    run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "origin.git")], tmp_path, env)
    run(["git", "push", "-q", str(tmp_path / "origin.git"), "HEAD:refs/heads/main"], project, env)
    checkout = clone(tmp_path / "origin.git", tmp_path / "runner", env)
    workflow = checkout / ".github/workflows/nbops.yml"
    registry = tmp_path / "registry"
    expressions = {"github.event_name": "repository_dispatch", "vars.NBOPS_REGISTRY": str(registry)}

    ran = run_job(workflow, "retrain", checkout, env, expressions, tmp_path)
    assert [name.split(" (")[0] for name in ran] == [
        "Pull data and cached results from the DVC remote", "Bring in the new data",
        "Retrain what the new data changed", "Commit the run", "Share the data, then the commit",
        "Promote to production when the gates agree", "Write the report to the job summary",
    ]
    assert (registry / "classifier/0.1.0/manifest.json").exists()
    assert run(["git", "log", "-1", "--format=%s", "main"], tmp_path / "origin.git", env).stdout.startswith("retrain:")

    # the next trigger with no new data: nothing to commit, so no promotion and no push
    ran = run_job(workflow, "retrain", checkout, env, expressions, tmp_path)
    assert [name.split(" (")[0] for name in ran] == [
        "Pull data and cached results from the DVC remote", "Bring in the new data",
        "Retrain what the new data changed", "Commit the run",
    ]
    assert not (registry / "classifier/0.2.0").exists()

    # and the job only runs on its triggers: push and pull requests run the pipeline job instead
    jobs = parse_yaml(workflow.read_text(), "nbops.yml")["jobs"]
    for event, runs_retrain in (("schedule", True), ("repository_dispatch", True), ("push", False), ("pull_request", False)):
        assert condition(jobs["retrain"]["if"].replace("inputs.retrain", "False"), {}, {"github.event_name": event}) is runs_retrain
        assert condition(jobs["pipeline"]["if"], {}, {"github.event_name": event}) is not runs_retrain
