"""Performance estimated before labels, through `nbops monitor` on a real package in a real
registry: a class-weighted (so uncalibrated) classifier saved with a decision threshold and the
calibration of its validation scores, captures written as the runtime writes them, labels that
arrive later. (The estimator against a model whose truth is known: tests/unit/test_monitor_estimate.py.)"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

import nbops
from nbops.testing import command_env, register_model, run, write_capture

MODEL = "fraudish"


def draw(rng: np.random.Generator, n: int, shift: float = 0.0, flip: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Two features; positives about 2% of rows. `shift` moves the inputs (covariate shift, the
    same relation); `flip` changes the relation (concept drift)."""
    frame = pd.DataFrame({"amount": rng.gamma(2.0, 40.0, n).round(2) * (1 + shift), "risk": rng.beta(1, 8 - 3 * shift, n).round(5)})
    logit = -6.5 + 0.012 * frame["amount"] + 9 * frame["risk"]
    if flip:
        logit = -6.5 + 0.012 * frame["amount"].mean() + 9 * (0.4 - frame["risk"])
    return frame, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("estimate")
    (root / "params.yaml").write_text("monitor:\n  tolerance: 0.05\n", encoding="utf-8")
    rng = np.random.default_rng(0)
    X_train, y_train = draw(rng, 30_000)
    X_val, y_val = draw(rng, 30_000)
    model = HistGradientBoostingClassifier(max_iter=60, class_weight="balanced", random_state=0).fit(X_train, y_train)
    scores = model.predict_proba(X_val)[:, 1]
    choice = nbops.choose_threshold(y_val, scores, review_cost=3, miss_cost=150)
    metrics = {"roc_auc": round(float(roc_auc_score(y_val, scores)), 6)}
    register_model(root, MODEL, model, X_train, metrics=metrics, decision=choice,
                   calibration={"labels": y_val, "scores": scores, "source": "a validation sample"})
    return {"root": root, "model": model, "threshold": choice["threshold"], "env": command_env(root)}


def capture(project, folder, frame):
    """The window as the server captures it: the label is the decision at the threshold."""
    model, threshold = project["model"], project["threshold"]
    probabilities = model.predict_proba(frame)
    decisions = (probabilities[:, 1] >= threshold).astype(int).tolist()
    return write_capture(folder, MODEL, frame, predictions=decisions, probabilities=probabilities.tolist(), classes=[0, 1],
                         rows_per_request=50)


def labels_file(path, request_ids, labels, rows_per_request=50):
    lines = ["request_id,row,label"] + [f"{request_ids[i // rows_per_request]},{i % rows_per_request},{int(label)}"
                                        for i, label in enumerate(labels)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_the_profile_records_a_usable_calibration(project):
    manifest = json.loads((project["root"] / "registry" / MODEL / "0.1.0" / "manifest.json").read_text())
    assert "calibration" in manifest["profile"]["holds"]
    assert manifest["profile"]["calibration"]["usable"] and manifest["profile"]["calibration"]["source"] == "a validation sample"
    profile = json.loads((project["root"] / "registry" / MODEL / "0.1.0" / "profile.json").read_text())
    assert profile["calibration"]["threshold"] == project["threshold"]
    # class weighting makes the raw scores overstate the risk; the reliability table shows it
    top = profile["calibration"]["reliability"][-1]
    assert top["mean_score"] > top["rate"] + 0.05


def test_before_labels_the_estimate_then_the_realized_figures_beside_it(project, tmp_path):
    rng = np.random.default_rng(1)
    frame, y = draw(rng, 20_000, shift=0.3)  # covariate shift: other inputs, the same relation
    ids = capture(project, tmp_path / "capture", frame)
    before = nbops.monitor(f"{MODEL}@production", capture=str(tmp_path / "capture"), root=project["root"])
    estimate = before.estimate
    assert estimate["usable"] and estimate["rows"] == 20_000 and estimate["threshold"] == project["threshold"]
    assert "labelled_rows" not in estimate and before.performance is None
    assert set(estimate["metrics"]) == {"precision", "recall", "roc_auc", "average_precision", "cost_per_row"}
    assert "**Performance estimated from the scores**" in before.to_markdown()
    assert "Performance estimated from the scores" in before.to_html()

    after = nbops.monitor(f"{MODEL}@production", capture=str(tmp_path / "capture"), root=project["root"],
                          labels=labels_file(tmp_path / "labels.csv", ids, y))
    metrics = after.estimate["metrics"]
    assert after.estimate["labelled_rows"] == 20_000
    for name, entry in metrics.items():
        assert entry["within"], (name, entry)
        assert entry["estimated"] == before.estimate["metrics"][name]["estimated"]
    assert abs(metrics["precision"]["error"]) < 0.05 and abs(metrics["roc_auc"]["error"]) < 0.03
    assert metrics["roc_auc"]["realized"] == after.performance["metrics"]["roc_auc"]["live"]
    assert not any("the estimate's band" in w for w in after.warnings + after.notes)
    assert json.loads(after.to_json())["estimate"]["metrics"]["recall"]["realized"] == metrics["recall"]["realized"]


def test_a_changed_relation_shows_once_labels_arrive(project, tmp_path):
    rng = np.random.default_rng(2)
    frame, y = draw(rng, 20_000, flip=True)
    ids = capture(project, tmp_path / "capture", frame)
    result = nbops.monitor(f"{MODEL}@production", capture=str(tmp_path / "capture"), root=project["root"],
                           labels=labels_file(tmp_path / "labels.csv", ids, y))
    outside = [name for name, m in result.estimate["metrics"].items() if m.get("within") is False]
    assert "precision" in outside and "roc_auc" in outside
    assert any("worse than the estimate's band" in w and "concept drift" in w for w in result.warnings)


@pytest.mark.slow
def test_the_cli_shows_the_estimate(project, tmp_path):
    rng = np.random.default_rng(3)
    frame, _ = draw(rng, 5_000)
    capture(project, tmp_path / "capture", frame)
    shown = run(["nbops", "monitor", MODEL, "--capture", str(tmp_path / "capture")], project["root"], project["env"])
    assert "**Performance estimated from the scores** (5,000 rows" in shown.stdout
    assert "| precision |" in shown.stdout and "| roc_auc |" in shown.stdout


@pytest.mark.slow
def test_the_estimate_agrees_with_nannymls_cbpe(tmp_path):
    """The same reference and windows through NannyML 0.13.1's CBPE (in its own virtual
    environment, as bench/estimate_bench.py runs it): the two estimates agree, and ours is no
    further from the realized figures than NannyML's."""
    import importlib.util

    from ..conftest import REPO

    bench = REPO / "bench" / "estimate_bench.py"
    spec = importlib.util.spec_from_file_location("estimate_bench", bench)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    if not module.NANNYML_PYTHON.exists():
        pytest.skip("NannyML's environment bench/.venv-nannyml is absent (its creation: bench/estimate_bench.py's docstring)")
    result = module.compare(module.simulated_case(), tmp_path)
    for name, summary in result["summary"].items():
        assert summary["between"] < 0.03, (name, summary)
        assert summary["nbops_error"] <= summary["nannyml_error"] + 0.01, (name, summary)
