"""The fraud-detection example end to end at its small (CI) scale: a nested DVC project in a real
git repository, reproduced with real DVC and kernels, promoted, served over 127.0.0.1; a bad batch
stops the pipeline before anything trains on it. And the full scale reproduces the handbook's
published figures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbops.testing import command_env, run, set_params

from ..conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

EXAMPLE = Path("examples") / "fraud-detection"
STAGES = ("generate", "validate", "featurize", "train", "evaluate")


def _tracked_example_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--", str(EXAMPLE)], cwd=REPO, capture_output=True, text=True, check=True)
    return [line for line in listed.stdout.splitlines() if line.strip()]


def _build(home: Path) -> tuple[Path, Path, dict, object, float]:
    """A git repository with a root DVC project and the example nested in it, as in this
    repository; the example reproduced once with its default (small) parameters."""
    env = command_env(home)
    repo = home / "repo"
    for name in _tracked_example_files():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    for name in (".dvcignore", ".gitignore"):
        shutil.copy2(REPO / name, repo / name)
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run(["dvc", "init", "-q"], repo, env)  # the root project (the predictive-maintenance example in this repo)
    shutil.copy2(REPO / ".dvcignore", repo / ".dvcignore")
    (repo / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hello\n", encoding="utf-8")
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "nested example"], repo, env)
    project = repo / EXAMPLE
    started = time.monotonic()
    first = run(["dvc", "repro"], project, env, timeout=1200)
    seconds = time.monotonic() - started
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "--allow-empty", "-m", "reproduced"], repo, env)
    return repo, project, env, first, seconds


@pytest.fixture(scope="session")
def built_fraud(tmp_path_factory):
    """The example reproduced once per test run; tests that change it work on a copy (`fraud_copy`)."""
    return _build(tmp_path_factory.mktemp("fraud"))


@pytest.fixture(scope="module")
def fraud(built_fraud):
    return built_fraud


@pytest.fixture(scope="module")
def fraud_copy(built_fraud, tmp_path_factory):
    """A copy of the reproduced repository (git, DVC cache and all) that the bad-batch tests may
    change, and the good batch (the build's data/raw) they start from."""
    repo, project, _, _, _ = built_fraud
    dest = tmp_path_factory.mktemp("fraud-copy")
    shutil.copytree(repo, dest / "repo", symlinks=True)
    return dest / "repo", dest / "repo" / project.relative_to(repo), command_env(dest), project / "data/raw"


def test_repro_in_the_example_runs_every_stage(fraud):
    _, project, env, first, seconds = fraud
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout
    print(f"small-scale dvc repro: {seconds:.0f} s")
    generated = json.loads((project / "metrics/generate.json").read_text())
    assert 90_000 <= generated["transactions"] <= 112_000 and 0.006 <= generated["fraud_rate"] <= 0.011
    assert json.loads((project / "metrics/validate.json").read_text())["checks_failed"] == 0
    evaluated = json.loads((project / "metrics/evaluate.json").read_text())
    assert evaluated["roc_auc"] > 0.8 and evaluated["average_precision"] > 0.4
    # a tenth of the world: about 4 compromised cards a day left to find, so at most about 0.04
    assert 0.01 < evaluated["card_precision_at_100"] <= 0.06
    # the threshold chosen by cost beats reviewing nothing on the test weeks it never saw
    assert evaluated["cost_per_day"] < evaluated["cost_per_day_reviewing_nothing"]
    for plot in ("plots/evaluate/pr_curve.json", "plots/evaluate/card_precision_by_day.json",
                 "plots/evaluate/cost_by_threshold.json", "plots/validate/checks.json"):
        assert json.loads((project / plot).read_text()), plot
    assert "Running stage" not in run(["dvc", "repro"], project, env).stdout
    # both protocols, side by side, where `dvc metrics show` lists the evaluation
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project, env).stdout)
    listed = next(iter(shown.values()))["data"]["metrics/evaluate.json"]["data"]
    for name in ("roc_auc", "average_precision", "card_precision_at_100", "handbook_split_roc_auc",
                 "handbook_prequential_roc_auc", "handbook_prequential_average_precision", "handbook_prequential_card_precision_at_k"):
        assert name in listed, name
    assert listed["handbook_folds"] == 4 and listed["handbook_k"] == 10  # 100 of 5,000 cards, scaled to 500
    # the known compromised cards removed from the test days: card precision is lower without them
    assert listed["handbook_prequential_card_precision_at_k"] < listed["handbook_prequential_card_precision_at_k_known_cards_kept"]
    profile = json.loads((project / "models/fraud-detector.profile.json").read_text())
    assert profile["calibration"]["check"]["usable"] and profile["calibration"]["source"].startswith("out-of-fold")


def test_the_root_pipeline_does_not_see_the_example(fraud):
    repo, _, env, _, _ = fraud
    listed = run(["dvc", "stage", "list"], repo, env).stdout
    assert "hello" in listed and not any(stage in listed for stage in STAGES)
    assert "generate" not in run(["dvc", "status"], repo, env).stdout


def test_nbops_sees_the_example_as_its_own_project(fraud):
    _, project, env, _, _ = fraud
    assert "5 stages, no problems found" in run(["nbops", "check"], project, env).stderr + run(["nbops", "check"], project, env).stdout
    report = run(["nbops", "report"], project, env).stdout
    assert "### Data checks" in report and "`validate`: all checks passed" in report


def test_the_promoted_package_serves_scores_and_decisions(fraud, tmp_path):
    _, project, env, _, _ = fraud
    promoted = run(["nbops", "promote", "fraud-detector", "--json"], project, env, timeout=600)
    result = json.loads(promoted.stdout)
    assert result["ok"], result
    recorded = json.loads((project / "models/fraud-detector.json").read_text())
    package = json.loads((Path(result["path"]) / "manifest.json").read_text())
    assert package["decision"] == recorded["decision"] and package["decision"]["chosen_by"] == "cost"
    assert package["sample_decisions"] == recorded["sample_decisions"]
    assert "threshold" in package["output"]

    test = pd.read_parquet(project / "data/features/test.parquet")
    features = package["sample_input"]["columns"]
    rows = pd.concat([test[test["tx_fraud"] == 1].head(25), test[test["tx_fraud"] == 0].head(75)])
    log = tmp_path / "serve.log"
    server = subprocess.Popen(["nbops", "serve", "fraud-detector@staging", "--port", "0"], cwd=project, env=env,
                              stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        deadline = time.monotonic() + 120
        while "serving on http://" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        url = log.read_text().split("serving on ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:")
        import httpx

        answer = httpx.post(f"{url}/predict", json={"records": rows[features].to_dict("records")}, timeout=60).json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    threshold = package["decision"]["threshold"]
    scores = np.asarray(answer["probabilities"])[:, 1]
    assert answer["threshold"] == threshold
    # one label per rule: the answer's label is the decision at the threshold, and nothing else
    assert answer["predictions"] == [1 if s >= threshold else 0 for s in scores] and "decisions" not in answer
    # the decisions catch frauds: most of the 25 frauds are flagged, few of the 75 genuine ones
    flagged = np.asarray(answer["predictions"])
    assert flagged[:25].mean() > 0.5 and flagged[25:].mean() < 0.3


def test_champion_and_challenger_are_compared_on_the_same_weeks(fraud):
    """Once a version is in staging, evaluate scores it on its own test weeks too, and the champion
    gate compares with those figures."""
    _, project, env, _, _ = fraud
    from nbops import read_records

    run(["dvc", "repro", "-f", "--single-item", "evaluate"], project, env, timeout=600)
    [compared] = [r for r in read_records(project / "reports/evaluate.ipynb") if r["kind"] == "champion"]
    assert (compared["registry_stage"], compared["version"]) == ("staging", "0.1.0")
    measured = json.loads((project / "metrics/evaluate.json").read_text())
    # the champion is the very model evaluated: the same figures on the same weeks
    assert compared["metrics"] == {k: measured[k] for k in ("roc_auc", "average_precision", "card_precision_at_100")}
    dry = json.loads(run(["nbops", "promote", "fraud-detector", "--dry-run", "--json"], project, env, timeout=600).stdout)
    assert dry["ok"] and {g["name"]: g["passed"] for g in dry["gates"]}["champion"]


def _model_files(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "models").glob("fraud-detector*"))}


def test_a_bad_batch_stops_the_pipeline_with_a_report(fraud_copy, tmp_path):
    repo, project, env, good_batch = fraud_copy
    batch = tmp_path / "batch"
    shutil.copytree(good_batch, batch, ignore=shutil.ignore_patterns("intake.json"))
    tx = pd.read_parquet(batch / "transactions.parquet")
    tx.loc[100, "tx_amount"] = -40.0
    tx.loc[200, "customer_id"] = 987_654
    tx.loc[300, "transaction_id"] = 299
    tx.loc[len(tx) - 1, "tx_datetime"] = pd.Timestamp("2031-01-01")
    tx.to_parquet(batch / "transactions.parquet", index=False)
    featurized = (project / "reports/featurize.ipynb").read_bytes()
    set_params(project, {"generate": {"source": str(batch)}})
    try:
        failed = run(["dvc", "repro"], project, env, check=False, timeout=900)
    finally:
        set_params(project, {"generate": {"source": ""}})
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "Running stage 'validate'" in failed.stdout and "Running stage 'featurize'" not in failed.stdout
    assert "data checks failed" in output and "amount_not_negative on tx_amount: 1 row (e.g. row 100: -40.0)" in output
    assert (project / "reports/featurize.ipynb").read_bytes() == featurized  # nothing downstream ran
    assert not (project / "data/validated").exists()
    metrics = json.loads((project / "metrics/validate.json").read_text())
    # the 2031 row also contradicts its own seconds: five checks, five rows (the duplicate id is two)
    assert metrics["checks_failed"] == 5 and metrics["rows_failing"] == 5
    plotted = {row["check"]: row["failing_rows"] for row in json.loads((project / "plots/validate/checks.json").read_text())}
    assert plotted["known_customer (customer_id)"] == 1 and plotted["field_uniqueness (transaction_id)"] == 2
    assert plotted["not_in_future (tx_datetime)"] == 1 and plotted["known_terminal"] == 0
    assert plotted["seconds_agree_with_datetime (tx_time_seconds)"] == 1

    report = run(["nbops", "report"], project, env).stdout
    assert "**`validate`: 5 checks failed** on" in report and "rows of `data/raw/transactions.parquet`" in report
    assert "| `known_customer` | `customer_id` | 1 | 200: `987654` |" in report
    assert "`checks_failed`" in report  # the metric's change against the last commit


def _shifted_a_year(tx):
    """The issue's batch: the last rows' seconds and days a year after their datetime (once, this
    emptied the training window, and train crashed leaving models/ empty)."""
    rows = tx.index[-50:]
    tx.loc[rows, "tx_time_seconds"] += 365 * 86_400
    tx.loc[rows, "tx_time_days"] += 365
    return tx, None


def _future_despite_a_declared_end(tx):
    tx.loc[len(tx) - 1, "tx_datetime"] = pd.Timestamp("2031-01-01")
    tx.loc[len(tx) - 1, "tx_time_seconds"] = int((pd.Timestamp("2031-01-01") - pd.Timestamp("2018-04-01")).total_seconds())
    tx.loc[len(tx) - 1, "tx_time_days"] = int(tx.loc[len(tx) - 1, "tx_time_seconds"]) // 86_400
    return tx, {"end": "2032-01-01T00:00:00"}  # the batch says it runs to 2032: no excuse


def _genuine_with_a_scenario(tx):
    tx.loc[500, ["tx_fraud", "tx_fraud_scenario"]] = [0, 2]
    return tx, None


def _labels_as_floats(tx):
    return tx.assign(tx_fraud=tx["tx_fraud"].astype(float)), None


def _empty(tx):
    return tx.iloc[:0], None


def _a_gap_where_training_was(tx):
    """Valid rows, but none in the training window (days 35–69 of the default split)."""
    return tx[(tx["tx_time_days"] < 30) | (tx["tx_time_days"] >= 70)].reset_index(drop=True), None


def _not_utf8(tx):
    return tx, b'{"start": "2018-04-01T00:00:00", "end": "2018-07-15T00:00:00", "sc\xe9le": "small"}'


CONTRADICTIONS = {
    # case: (change, the stage that stops, what the one line must say)
    "time fields a year apart": (_shifted_a_year, "validate",
                                 "seconds_agree_with_datetime on tx_time_seconds: 50 rows (e.g. row 95585: '40596273 s from the batch start"),
    "in the future, whatever the batch declares": (_future_despite_a_declared_end, "validate",
                                                   "not_in_future on tx_datetime: 1 row (e.g. row 95634: '2031-01-01 00:00:00')"),
    "a genuine label with a fraud scenario": (_genuine_with_a_scenario, "validate",
                                              "label_agrees_with_scenario on tx_fraud: 1 row (e.g. row 500: '0 with tx_fraud_scenario 2')"),
    "labels of the wrong type": (_labels_as_floats, "validate", "dtype on tx_fraud: 95635 rows (e.g. row 0: '0.0 (float64, expected int64)'"),
    "an empty batch": (_empty, "generate", "transactions.parquet: no transactions (an empty batch)"),
    "an empty training window": (_a_gap_where_training_was, "featurize",
                                 "data/validated/transactions.parquet: no transactions in the training window, days 35–69"),
    "batch.json not UTF-8": (_not_utf8, "generate", "batch.json: not UTF-8 text (byte 66: b'\\xe9')"),
}


@pytest.mark.parametrize("case", list(CONTRADICTIONS))
def test_a_contradictory_batch_stops_early_and_the_last_good_model_stays(fraud_copy, tmp_path, case):
    """Each batch stops at the first stage that can tell, with one line naming the file, the
    column and a real row; train never starts, so models/ keeps the last good model (the choice:
    checks early enough that nothing downstream starts, rather than restoring outputs)."""
    repo, project, env, good_batch = fraud_copy
    change, stage, said = CONTRADICTIONS[case]
    good = _model_files(project)
    assert set(good) == {"fraud-detector.json", "fraud-detector.profile.json", "fraud-detector.skops"}
    batch = tmp_path / "batch"
    shutil.copytree(good_batch, batch, ignore=shutil.ignore_patterns("intake.json"))
    tx, declared = change(pd.read_parquet(batch / "transactions.parquet"))
    tx.to_parquet(batch / "transactions.parquet", index=False)
    if isinstance(declared, bytes):
        (batch / "batch.json").write_bytes(declared)
    elif declared:
        (batch / "batch.json").write_text(json.dumps({**json.loads((batch / "batch.json").read_text()), **declared}))
    set_params(project, {"generate": {"source": str(batch)}})
    try:
        failed = run(["dvc", "repro"], project, env, check=False, timeout=900)
    finally:
        set_params(project, {"generate": {"source": ""}})
    errors = [line for line in (failed.stdout + failed.stderr).splitlines() if line.startswith("nbops: error:")]
    assert failed.returncode != 0 and len(errors) == 1, failed.stdout + failed.stderr
    assert f"notebooks/{stage}.py" in errors[0] and said in errors[0], errors[0]
    assert "Traceback" not in failed.stderr and "row None" not in errors[0]
    assert f"Running stage '{stage}'" in failed.stdout and "Running stage 'train'" not in failed.stdout
    assert _model_files(project) == good


# The handbook's published figures for its full setting (5,000 customers, 10,000 terminals, 183 days).
PUBLISHED = {"transactions": 1_754_155, "frauds": 14_681, "scenario_1": 973, "scenario_2": 9_077, "scenario_3": 4_631}
# Relative tolerances: about three standard deviations of each figure between seeds of our
# simulator (bench/fraud_bench.py measures them; bench/README.md has the table). The figures
# differ from seed to seed mostly through each customer's U(0, 4) daily rate and, for scenario 1,
# through the few customers whose mean amount is near 100.
# Over 10 seeds: sd 0.7% (transactions), 1.4% (frauds), 6% (scenario 1), 2% (scenario 2), 3.6% (scenario 3),
# 0.009 points (fraud rate); the means are within 2% of every published figure.
TOLERANCE = {"transactions": 0.03, "frauds": 0.05, "scenario_1": 0.20, "scenario_2": 0.07, "scenario_3": 0.12}


def test_full_scale_reproduces_the_handbooks_published_figures():
    sys.path.insert(0, str(REPO / EXAMPLE))
    try:
        from fraudkit import simulate
    finally:
        sys.path.remove(str(REPO / EXAMPLE))
    counts = simulate.summary(simulate.simulate(simulate.WORLDS["full"], seed=0).transactions)
    for figure, published in PUBLISHED.items():
        assert abs(counts[figure] / published - 1) <= TOLERANCE[figure], (figure, counts[figure], published)
    assert abs(counts["fraud_rate"] - 0.0084) <= 0.0003  # 0.84% ± 0.03 points


# The handbook's baselines (chapter 5, its ModelSelection notebook: four prequential folds averaged)
# of the models comparable to ours: logistic regression, random forest, XGBoost.
HANDBOOK_CHAPTER_5 = {"roc_auc": (0.868, 0.870), "average_precision": (0.623, 0.687), "card_precision_at_k": (0.297, 0.303)}
# Our figures vary between seeds of the simulator (the handbook's are one seed of its own): over
# seeds 0–3 the project's model gave standard deviations of 0.013 (ROC AUC), 0.014 (average
# precision) and 0.009 (card precision@100) — "within the spread" allows two of them either side.
BETWEEN_SEEDS = {"roc_auc": 0.013, "average_precision": 0.014, "card_precision_at_k": 0.009}


def test_full_scale_handbook_protocol_lands_on_the_handbooks_baselines():
    """The handbook's world (seed 0), its features, its protocol (fraudkit/protocol.py), the
    project's model configuration: the prequential figures land among the handbook's comparable
    models, and without the known-cards filter card precision comes out about 0.13 higher, as
    the handbook says."""
    sys.path.insert(0, str(REPO / EXAMPLE))
    try:
        from fraudkit import features, protocol, simulate
    finally:
        sys.path.remove(str(REPO / EXAMPLE))
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    featured = features.add_features(simulate.simulate(simulate.WORLDS["full"], seed=0).transactions)
    start = protocol.first_training_day(protocol.origin_of(featured), int(featured["tx_time_days"].max()))
    k = protocol.scaled_k(featured["customer_id"].nunique())
    assert (start, k) == (115, 100)  # 2018-07-25, the handbook's own date; its 100 cards

    def model():  # params.yaml train: the project's configuration
        return HistGradientBoostingClassifier(learning_rate=0.1, max_iter=100, max_leaf_nodes=31, class_weight="balanced",
                                              early_stopping=False, random_state=0)

    with threadpool_limits(1):
        folds = protocol.evaluate(model, featured, features.feature_names(), start, k)
    print(folds.round(3).to_string())
    assert folds["train_first_day"].tolist() == [115, 108, 101, 94] and folds["test_first_day"].tolist() == [129, 122, 115, 108]
    mean = folds.mean(numeric_only=True)
    for name, (low, high) in HANDBOOK_CHAPTER_5.items():
        margin = 2 * BETWEEN_SEEDS[name]
        assert low - margin <= mean[name] <= high + margin, (name, mean[name], (low, high))
    assert 0.09 <= mean["card_precision_at_k_known_cards_kept"] - mean["card_precision_at_k"] <= 0.17
