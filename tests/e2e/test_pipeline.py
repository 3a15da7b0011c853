"""The example project end to end: real git, real DVC, real kernels (marked slow)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from nbops.testing import copy_project, execute_as_jupyterlab, init_repo, run, set_params, write_notebook

from ..conftest import REPO, real_data_csv

pytestmark = pytest.mark.slow

SMALL = {"ingest": {"window_days": 9}, "train": {"max_iter": 50}}
METRICS = {"roc_auc", "average_precision", "f1", "recall"}
STAGES = ("ingest", "featurize", "train", "evaluate")


def window_rows(project, days: int) -> int:
    """Rows of the newest `days` daily batches (the seeded batches are consecutive days)."""
    batches = sorted((project / "data/batches").glob("*.csv"))[-days:]
    return sum(len(batch.read_text().splitlines()) - 1 for batch in batches)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The example project, copied into a fresh git repo with small parameters, reproduced once."""
    home = tmp_path_factory.mktemp("pipeline")
    from nbops.testing import command_env

    env = command_env(home)
    project = copy_project(REPO, home / "project")
    set_params(project, SMALL)
    init_repo(project, env)
    first = run(["dvc", "repro"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "-m", "reproduced"], project, env)
    return project, env, first


def test_repro_runs_all_four_stages_and_records_outputs(pipeline):
    project, env, first = pipeline
    for stage in ("ingest", "featurize", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first.stdout
        assert (project / f"reports/{stage}.ipynb").exists()
    for path in ("data/raw.csv", "data/features/train.csv", "models/failure-predictor.skops",
                 "models/failure-predictor.json", "plots/evaluate/pr_curve.json", "plots/evaluate/confusion_matrix.json"):
        assert (project / path).exists(), path
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert set(metrics) == METRICS
    assert metrics["roc_auc"] > 0.8  # synthetic data follows deterministic failure rules


def test_second_repro_is_a_no_op_and_status_is_clean(pipeline):
    project, env, _ = pipeline
    second = run(["dvc", "repro"], project, env)
    assert "Running stage" not in second.stdout
    assert "up to date" in run(["dvc", "status"], project, env).stdout


def test_dvc_reads_metrics_and_plots(pipeline):
    project, env, _ = pipeline
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project, env).stdout)
    values = shown[""]["data"]["metrics/evaluate.json"]["data"]
    assert set(values) == METRICS
    plots = run(["dvc", "plots", "show", "--json"], project, env).stdout
    assert "plots/evaluate/pr_curve.json" in plots and "plots/evaluate/confusion_matrix.json" in plots


def test_forced_rerun_reproduces_identical_outputs(pipeline):
    project, env, _ = pipeline
    run(["dvc", "repro", "-f", "train", "evaluate", "--single-item"], project, env)
    # reports, model and metrics are byte-identical, so dvc.lock does not churn
    assert run(["git", "status", "--porcelain", "dvc.lock"], project, env).stdout == ""


@pytest.mark.timeout(1800)  # four notebooks at their (full-size) defaults, then four under nbval
def test_exploring_and_nbval_leave_the_pipeline_alone(pipeline):
    """Non-default params, `dvc repro`; then every stage notebook run as JupyterLab runs it (its
    defaults, no `nbops run`) and `pytest --nbval-lax`: the pipeline's outputs stay what DVC
    recorded, `dvc status` is clean and the promotion gates pass. Exploring recorded into the
    scratch folder, and nbval ran the notebooks with params.yaml's values, not their defaults."""
    project, env, _ = pipeline
    set_params(project, {"evaluate": {"threshold": 0.4},  # ingest and train are off their defaults too (SMALL)
                         "promote": {"thresholds": {"roc_auc": ">= 0.8", "recall": ">= 0.3"}}})
    run(["dvc", "repro"], project, env)
    outputs = ["data/raw.csv", "data/features/train.csv", "data/features/test.csv", "models/failure-predictor.skops",
               "models/failure-predictor.json", "metrics/evaluate.json", "plots/evaluate/pr_curve.json",
               *(f"reports/{stage}.ipynb" for stage in STAGES)]
    before = {path: (project / path).read_bytes() for path in outputs}

    executed = {stage: execute_as_jupyterlab(project / f"notebooks/{stage}.ipynb", env) for stage in STAGES}
    shown = "\n".join(
        str(output.get("text") or output.get("data", {}).get("text/plain", ""))
        for cell in executed["evaluate"].cells for output in cell.get("outputs", [])
    )
    # evaluate, explored after train was, evaluated the model train's exploration saved
    assert "failure-predictor.json is read from .nbops/scratch/train/models/failure-predictor.json" in shown
    scratch = project / ".nbops/scratch"
    # the notebook's default window (30 days) when explored
    assert len((scratch / "ingest/data/raw.csv").read_text().splitlines()) == window_rows(project, 30) + 1
    assert {path: (project / path).read_bytes() for path in outputs} == before
    assert "up to date" in run(["dvc", "status"], project, env).stdout

    notebooks = [f"notebooks/{stage}.ipynb" for stage in STAGES]
    result = run(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", *notebooks], project, env)
    assert " passed" in result.stdout
    # under nbval the notebooks ran with params.yaml's values: exactly the pipeline's metrics
    assert (scratch / "evaluate/metrics/evaluate.json").read_bytes() == before["metrics/evaluate.json"]
    assert len((scratch / "ingest/data/raw.csv").read_text().splitlines()) == window_rows(project, SMALL["ingest"]["window_days"]) + 1
    assert {path: (project / path).read_bytes() for path in outputs} == before
    assert "up to date" in run(["dvc", "status"], project, env).stdout
    assert not (project / "metrics/notebook.json").exists()
    run(["nbops", "promote", "failure-predictor", "--dry-run"], project, env)


def test_a_promotion_from_a_cell_packages_the_pipelines_model_not_the_explored_one(pipeline, tmp_path):
    project, env, _ = pipeline
    cells = [
        "import json, nbops, pandas as pd\n"
        "from sklearn.dummy import DummyClassifier\n"
        "X = pd.read_csv(nbops.input_path('data/features/test.csv')).drop(columns=['Machine failure'])\n"
        "explored = nbops.save_model(DummyClassifier().fit(X, [0] * len(X)), 'failure-predictor', sample_input=X.head(5))",
        "result = nbops.promote('failure-predictor', to='staging')\n"
        "print(json.dumps({'path': result.path, 'explored': explored['sha256']}))",
        "nbops.save_model(DummyClassifier().fit(X, [0] * len(X)), 'only-explored', sample_input=X.head(5))\n"
        "try:\n    nbops.promote('only-explored', dry_run=True)\nexcept nbops.NbopsError as error:\n    print(error)",
    ]
    notebook = write_notebook(project / "explore.ipynb", [], body=cells)
    env = {**env, "NBOPS_REGISTRY": str(tmp_path / "registry")}
    executed = execute_as_jupyterlab(notebook, env)
    printed = json.loads(executed.cells[-2].outputs[-1]["text"])
    assert "'only-explored' was only saved by exploring (.nbops/scratch/explore/models/)" in executed.cells[-1].outputs[-1]["text"]
    packaged = json.loads((Path(printed["path"]) / "manifest.json").read_text())
    pipeline_model = json.loads((project / "models/failure-predictor.json").read_text())
    assert packaged["sha256"] == pipeline_model["sha256"] != printed["explored"]
    notebook.unlink()


def test_exp_run_with_set_param(pipeline):
    project, env, _ = pipeline
    result = run(["dvc", "exp", "run", "-S", "train.max_iter=25"], project, env)
    assert "Running stage 'train'" in result.stdout
    assert "max_iter = 25" in (project / "reports/train.ipynb").read_text()
    shown = run(["dvc", "exp", "show", "--json"], project, env).stdout
    assert "max_iter" in shown


def test_queued_sweep_runs_on_two_workers_and_exp_show_lists_it(pipeline):
    """The README's sweep: DVC's own queue, each experiment in a temporary copy of the repo."""
    project, env, _ = pipeline
    # the copies are made from git: commit what the workspace holds (earlier tests changed it)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "--allow-empty", "-m", "before the sweep"], project, env)
    queued = run(["dvc", "exp", "run", "--queue", "-S", "train.max_iter=10,20"], project, env)
    assert queued.stdout.count("Queued experiment") == 2
    run(["dvc", "queue", "start", "-j", "2"], project, env)
    deadline = time.monotonic() + 300
    while True:
        status = run(["dvc", "queue", "status"], project, env).stdout
        if not re.search(r"\b(Queued|Running)\b", status) or time.monotonic() > deadline:
            break
        time.sleep(3)  # each `dvc queue status` costs a second of CPU the workers need
    assert status.count("Success") == 2, status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project, env).stdout)
    experiments = [
        exp["revs"][0]["data"] for commit in shown for exp in (commit.get("experiments") or [])
    ]
    found = {e["params"]["params.yaml"]["data"]["train"]["max_iter"]: e["metrics"] for e in experiments}
    assert set(found) == {10, 20}
    for metrics in found.values():
        assert metrics["metrics/evaluate.json"]["data"]["roc_auc"] > 0.8
    table = run(["dvc", "exp", "show", "--no-pager", "--md"], project, env).stdout
    assert table.count("Success") == 2


@pytest.mark.skipif(real_data_csv() is None, reason="the AI4I 2020 CSV (../shared/data/ai4i2020.csv) is not here")
def test_real_ai4i_data_reaches_roc_auc_095(tmp_path):
    from nbops.testing import command_env

    env = command_env(tmp_path)
    project = copy_project(REPO, tmp_path / "project")
    init_repo(project, env)
    # the real file replayed as day batches: 334 rows a day make 30 days, the whole training window
    replayed = run(["python", "-m", "plantsim", "replay", str(real_data_csv())], project, env)
    assert "wrote 30 batches to data/batches: 2024-01-01 … 2024-01-30" in replayed.stdout
    assert "nothing to seed" in run(["dvc", "repro"], project, env).stdout
    raw = (project / "data/raw.csv").read_text().splitlines()
    assert len(raw) == 10001
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert metrics["roc_auc"] >= 0.95, metrics


def test_run_cache_restores_a_previous_run_without_executing(pipeline):
    project, env, _ = pipeline
    before = (project / "params.yaml").read_text()
    set_params(project, {"evaluate": {"threshold": 0.35}})
    assert "Running stage 'evaluate'" in run(["dvc", "repro"], project, env).stdout
    (project / "params.yaml").write_text(before)
    back = run(["dvc", "repro"], project, env).stdout
    assert "Running stage" not in back and "skipping run" in back  # every out is cached: the run-cache works
