"""Decisions from scores, checked against hand computations on tiny data sets; the decision
threshold in a saved model's manifest; data checks recorded by log_checks."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from nbops.models import decisions
from nbops.pipeline import record
from nbops.core.exceptions import ChecksFailed, RecordError


# Six rows, scores descending, labels:      s: .9  .8  .7  .6  .4  .1
#                                            y:  1   0   1   0   0   1
Y = [1, 0, 1, 0, 0, 1]
S = [0.9, 0.8, 0.7, 0.6, 0.4, 0.1]


def test_threshold_by_cost_matches_a_hand_computation():
    # review 1 per flagged row, a miss costs 3. Cost of flagging the top i rows:
    #   0: 9   1: 1+6=7   2: 2+6=8   3: 3+3=6   4: 4+3=7   5: 5+3=8   6: 6+0=6
    # minimum 6 at i=3 (threshold .7) and i=6 (threshold .1): the higher threshold wins.
    choice = decisions.choose_threshold(Y, S, review_cost=1.0, miss_cost=3.0)
    assert choice["threshold"] == 0.7
    assert (choice["cost"], choice["flagged"], choice["cost_flag_nothing"], choice["cost_flag_everything"]) == (6.0, 3, 9.0, 6.0)
    assert (choice["positive_class"], choice["chosen_by"], choice["rows"], choice["positives"]) == (1, "cost", 6, 3)


def test_threshold_with_a_loss_per_row_and_when_reviewing_never_pays():
    # misses lose each row's amount: positives at .9 (10), .7 (100), .1 (5); review costs 20.
    # top 1: 20+105=125, top 3: 60+5=65, all 6: 120+0=120, none: 115 → threshold .7
    amounts = [10, 1, 100, 1, 1, 5]
    choice = decisions.choose_threshold(Y, S, review_cost=20, miss_cost=amounts)
    assert (choice["threshold"], choice["cost"], choice["miss_cost"]) == (0.7, 65.0, "per row")
    # reviewing at 1000 a row never pays: flag nothing, with a threshold above every score
    never = decisions.choose_threshold(Y, S, review_cost=1000, miss_cost=1)
    assert never["flagged"] == 0 and never["threshold"] > 0.9 and never["cost"] == 3.0


def test_ties_stay_together():
    # two rows share the score .5: a threshold flags both or neither
    choice = decisions.choose_threshold([1, 0, 0], [0.5, 0.5, 0.2], review_cost=1, miss_cost=1.5)
    # none: 1.5; both .5 rows: 2; all: 3 → flag nothing
    assert choice["flagged"] == 0


def test_cost_curve_rows_match_choose_threshold():
    curve = decisions.cost_curve(Y, S, review_cost=1.0, miss_cost=3.0, thresholds=[0.0, 0.65, 0.7, 0.95])
    assert curve["flagged"].tolist() == [6, 3, 3, 0]
    assert curve["missed"].tolist() == [0, 1, 1, 3]
    assert curve["cost"].tolist() == [6.0, 6.0, 6.0, 9.0]
    assert list(curve.columns) == ["threshold", "flagged", "missed", "review_cost", "miss_cost", "cost"]


def test_precision_at_k_by_day_excludes_cards_already_found():
    # day 1: cards A (.9, fraud), B (.8), C (.3, fraud); day 2: A again (.95, fraud), D (.5, fraud)
    frame = pd.DataFrame({
        "day":   [1, 1, 1, 1, 2, 2, 2],
        "card":  ["A", "A", "B", "C", "A", "D", "B"],
        "score": [0.9, 0.2, 0.8, 0.3, 0.95, 0.5, 0.1],
        "fraud": [1, 0, 0, 1, 1, 1, 0],
    })
    daily = decisions.precision_at_k(frame["fraud"], frame["score"], k=2, groups=frame["day"], entities=frame["card"])
    # day 1 top 2 cards: A (max .9, fraud), B (.8) → 1/2; A is found.
    # day 2 without A: D (.5, fraud), B (.1) → 1/2.   Without exclusion, day 2: A, D → 2/2.
    assert daily.to_dict("records") == [
        {"group": 1, "precision": 0.5, "hits": 1, "positives": 2},
        {"group": 2, "precision": 0.5, "hits": 1, "positives": 1},
    ]
    kept = decisions.precision_at_k(frame["fraud"], frame["score"], k=2, groups=frame["day"], entities=frame["card"], exclude_found=False)
    assert kept["precision"].tolist() == [0.5, 1.0]
    # one group, rows as entities: the top 3 rows hold 2 positives
    assert decisions.precision_at_k(Y, S, k=3)["precision"].tolist() == [2 / 3]


@pytest.mark.parametrize("call", [
    lambda: decisions.choose_threshold([0, 2], [0.1, 0.2], review_cost=1, miss_cost=1),
    lambda: decisions.choose_threshold([0, 1], [0.1], review_cost=1, miss_cost=1),
    lambda: decisions.choose_threshold([0, 1], [0.1, np.nan], review_cost=1, miss_cost=1),
    lambda: decisions.choose_threshold([0, 1], [0.1, 0.2], review_cost=-1, miss_cost=1),
    lambda: decisions.precision_at_k([0, 1], [0.1, 0.2], k=0),
])
def test_bad_inputs_are_named(call):
    with pytest.raises(ValueError, match="choose_threshold|precision_at_k"):
        call()


# --- the decision in the manifest --------------------------------------------------------------

@pytest.fixture
def classifier():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X["a"] + 0.5 * rng.normal(size=200) > 1).astype(int)
    return LogisticRegression().fit(X, y), X, y


def test_save_model_records_the_decision_and_sample_decisions(stage_root, classifier):
    model, X, y = classifier
    choice = decisions.choose_threshold(y, model.predict_proba(X)[:, 1], review_cost=1, miss_cost=10)
    manifest = record.save_model(model, "m", sample_input=X.head(30), decision=choice)
    written = json.loads((stage_root / "models/m.json").read_text())
    assert written["decision"] == manifest["decision"]
    assert written["decision"]["threshold"] == choice["threshold"]
    assert list(written["decision"])[:2] == ["threshold", "positive_class"]
    probabilities = model.predict_proba(X.head(30))[:, 1]
    assert written["sample_decisions"] == [1 if p >= choice["threshold"] else 0 for p in probabilities]
    assert 0 < sum(written["sample_decisions"]) < 30  # the sample shows both decisions


def test_save_model_without_decision_records_none(stage_root, classifier):
    model, X, _ = classifier
    manifest = record.save_model(model, "m", sample_input=X.head(5))
    assert "decision" not in manifest and "sample_decisions" not in manifest


@pytest.mark.parametrize("decision, message", [
    ({"cost": 3}, "needs a 'threshold'"),
    (float("nan"), "finite number"),
    ("high", "finite number"),
    ({"threshold": 0.5, "positive_class": 7}, "positive_class 7 is not one of"),
])
def test_bad_decisions_are_refused(stage_root, classifier, decision, message):
    model, X, _ = classifier
    with pytest.raises(RecordError, match=message):
        record.save_model(model, "m", sample_input=X.head(5), decision=decision)
    assert not (stage_root / "models/m.json").exists()


# --- data checks ---------------------------------------------------------------------------------

def test_log_checks_records_and_stops_on_failures(stage_root):
    findings = pd.DataFrame({
        "check": ["greater_than_or_equal_to(0)", "greater_than_or_equal_to(0)", "not_nullable"],
        "column": ["amount", "amount", "customer_id"],
        "row": [3, 9, 4],
        "value": [-1.5, -2.0, None],
    })
    with pytest.raises(ChecksFailed, match=r"2 data checks failed on 10 rows: greater_than_or_equal_to\(0\) on amount: 2 rows \(e.g. row 3: -1.5, row 9: -2.0\)"):
        record.log_checks(findings, rows=10, checks=["greater_than_or_equal_to(0)", "not_nullable", "unique"])
    metrics = json.loads((stage_root / "metrics/unit.json").read_text())
    assert metrics == {"rows_checked": 10, "checks_failed": 2, "rows_failing": 3}
    plot = json.loads((stage_root / "plots/unit/checks.json").read_text())
    assert plot == [
        {"check": "greater_than_or_equal_to(0) (amount)", "failing_rows": 2},
        {"check": "not_nullable (customer_id)", "failing_rows": 1},
        {"check": "unique", "failing_rows": 0},
    ]


def test_log_checks_passing_and_pandera_failure_cases(stage_root):
    summary = record.log_checks(None, rows=5, checks=["a", "b"])
    assert summary == {"rows": 5, "passed": True, "failed": []}
    assert json.loads((stage_root / "plots/unit/checks.json").read_text()) == [
        {"check": "a", "failing_rows": 0}, {"check": "b", "failing_rows": 0}]
    pandera_like = pd.DataFrame({"schema_context": ["Column"], "column": ["x"], "check": ["in_range(0, 1)"],
                                 "check_number": [0], "failure_case": [7], "index": [2]})
    summary = record.log_checks(pandera_like, rows=5, fail=False)
    assert summary["failed"] == [{"check": "in_range(0, 1)", "column": "x", "failing_rows": 1, "examples": [{"row": 2, "value": 7}]}]
    with pytest.raises(RecordError, match="lack the columns"):
        record.log_checks(pd.DataFrame({"what": [1]}), rows=1)


def test_log_checks_names_the_file_checked(stage_root):
    findings = pd.DataFrame({"check": ["known_customer"], "column": ["customer_id"], "row": [200], "value": [987654]})
    with pytest.raises(ChecksFailed) as raised:
        record.log_checks(findings, rows=10, source="data/raw/transactions.parquet")
    assert str(raised.value) == ("1 data check failed on 10 rows of data/raw/transactions.parquet: "
                                 "known_customer on customer_id: 1 row (e.g. row 200: 987654)")
    assert record.log_checks(None, rows=10, source="data/raw/transactions.parquet")["source"] == "data/raw/transactions.parquet"
