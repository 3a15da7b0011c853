"""A decision threshold from save_model to the answers of a real server over 127.0.0.1: the
package answers each row's score and its decision (the label, one field per rule), and refuses a threshold that does not give
the decisions the notebook recorded."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from nbops.models import decisions
from nbops.promotion import gates
from nbops.pipeline import record
from nbops.runtime import PackagedModel, PackageError
from nbops.testing import assert_same_answers

from .test_runtime import Server, _installed_copy, _isolated_env, _package


def _data(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"amount": rng.gamma(2.0, 30.0, n).round(2), "night": rng.integers(0, 2, n),
                      "risk": rng.random(n).round(4)})
    y = ((X["amount"] > 120) & (X["risk"] > 0.3) | (rng.random(n) < 0.01)).astype(int)
    return X, y


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    X, y = _data(3000, 0)
    model = HistGradientBoostingClassifier(max_iter=30, class_weight="balanced", random_state=0).fit(X, y)
    X_val, y_val = _data(1000, 1)
    choice = decisions.choose_threshold(y_val, model.predict_proba(X_val)[:, 1], review_cost=2, miss_cost=40)
    sample = pd.concat([X_val[y_val == 0].head(15), X_val[y_val == 1].head(15)])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(record.ENV_ROOT, str(root))
        patch.setenv(record.ENV_STAGE, "train")
        patch.delenv(record.ENV_JOURNAL, raising=False)
        manifest = record.save_model(model, "fraud-detector", sample_input=sample, decision=choice)
    package = _package(root, manifest, root / "package")
    return root, package, manifest, model


def test_the_package_decides_as_the_notebook_recorded(saved):
    _, package, manifest, model = saved
    loaded = PackagedModel.load(package, n_jobs=1)
    assert loaded.decision.threshold == manifest["decision"]["threshold"]
    sample = pd.DataFrame(manifest["sample_input"]["data"], columns=manifest["sample_input"]["columns"])
    assert loaded.decide(sample) == manifest["sample_decisions"]
    assert set(manifest["sample_decisions"]) == {0, 1}
    assert gates.check_parity(package) == []


def test_a_changed_threshold_is_caught_by_parity_and_at_start_up(saved, tmp_path):
    _, package, manifest, _ = saved
    changed = json.loads((package / "manifest.json").read_text())
    probabilities = np.asarray(changed["sample_probabilities"])[:, 1]
    # a threshold that flips at least one of the sample's decisions
    changed["decision"]["threshold"] = float(np.sort(probabilities)[len(probabilities) // 2]) + 1e-9
    folder = tmp_path / "changed"
    folder.mkdir()
    (folder / "model.skops").write_bytes((package / "model.skops").read_bytes())
    (folder / "manifest.json").write_text(json.dumps(changed))
    assert any("decisions at threshold" in f for f in gates.check_parity(folder))
    with pytest.raises(PackageError, match="decisions on its sample differ"):
        PackagedModel.load(folder).warmup()
    changed["decision"]["threshold"] = "high"
    (folder / "manifest.json").write_text(json.dumps(changed))
    with pytest.raises(PackageError, match="decision.threshold must be a finite number"):
        PackagedModel.load(folder)


def test_parity_allows_another_order_of_the_sums_and_nothing_more(saved, tmp_path):
    """Recorded probabilities a few ulps away (another BLAS, CPU or thread count adds the same terms
    in another order) pass the parity gate and the warm-up; a millionth away (another computation)
    fails the gate."""
    _, package, _, _ = saved
    for nudge, passes in ((lambda p: np.nextafter(np.nextafter(p, 2.0), 2.0), True), (lambda p: p * (1 + 1e-6), False)):
        changed = json.loads((package / "manifest.json").read_text())
        changed["sample_probabilities"] = nudge(np.asarray(changed["sample_probabilities"])).tolist()
        folder = tmp_path / str(passes)
        folder.mkdir()
        (folder / "model.skops").write_bytes((package / "model.skops").read_bytes())
        (folder / "manifest.json").write_text(json.dumps(changed))
        failures = gates.check_parity(folder)
        if passes:
            assert failures == []
            PackagedModel.load(folder).warmup()
        else:
            assert failures == ["parity: the package's probabilities differ from the recorded ones beyond rtol 1e-09"]


@pytest.fixture(scope="module")
def server(saved, tmp_path_factory):
    _, package, _, _ = saved
    where = tmp_path_factory.mktemp("served")
    running = Server(_installed_copy(package, where / "site"), where / "server.log")
    yield running
    running.client.close()
    running.stop()


def test_the_server_answers_one_label_per_rule_the_decision(server, saved):
    """With a decision threshold the answer's label is the decision; the score is the
    probability; there is no second label field; /metadata names the rule."""
    _, _, manifest, model = saved
    threshold = manifest["decision"]["threshold"]
    X, _ = _data(400, 7)
    answer = server.client.post("/predict", json={"columns": {c: X[c].tolist() for c in X.columns}})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["threshold"] == threshold
    assert set(got) == {"predictions", "probabilities", "threshold", "classes", "model", "version"}
    scores = np.asarray(got["probabilities"])[:, 1]
    assert got["predictions"] == [1 if s >= threshold else 0 for s in scores]
    assert 0 < sum(got["predictions"]) < len(X)
    # the rule matters: the model's own cut at 0.5 would answer differently on some rows
    assert got["predictions"] != model.predict(X).tolist()
    np.testing.assert_allclose(scores, model.predict_proba(X)[:, 1], rtol=0, atol=1e-12)
    sample = [dict(zip(manifest["sample_input"]["columns"], row)) for row in manifest["sample_input"]["data"]]
    assert_same_answers(manifest, decisions=server.client.post("/predict", json=sample).json()["predictions"])
    metadata = server.client.get("/metadata").json()
    assert metadata["decision"]["threshold"] == threshold
    assert metadata["label"] == {
        "rule": "threshold", "threshold": threshold, "positive_class": 1, "other_class": 0, "score": "probability of class 1",
        "text": f"1 when the probability of class 1 is at least {threshold}, else 0",
    }


def test_batch_scoring_writes_the_decision_as_the_prediction(saved, tmp_path):
    _, package, manifest, _ = saved
    pkg = _installed_copy(package, tmp_path / "site")
    source = tmp_path / "in.csv"
    pd.DataFrame(manifest["sample_input"]["data"], columns=manifest["sample_input"]["columns"]).to_csv(source, index=False)
    result = subprocess.run([sys.executable, "-m", pkg.name, "predict", str(source)], cwd=tmp_path,
                            env=_isolated_env(pkg.parent), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(io.StringIO(result.stdout))
    assert "decision" not in scored.columns
    assert_same_answers(manifest, decisions=scored["prediction"].tolist())
