"""Performance estimated before labels (nbops/monitoring/estimate.py) against a simulated model whose
truth is known: raw scores r, and P(positive | r) = r³ — an overconfident model, so the estimate
only works through the calibration the profile records (calibration.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from nbops.monitoring.calibration import MIN_POSITIVES, POOR_CALIBRATION, build_calibration, calibrated
from nbops.monitoring.estimate import ScoreBins, beside_realized, estimate, notes_of, warnings_of

THRESHOLD = 0.4
DECISION = {"threshold": THRESHOLD, "positive_class": 1, "review_cost": 3.0, "miss_cost": 150.0}


def draw(rng, n, a=1.0, b=6.0, power=3.0):
    """Raw scores ~ Beta(a, b) and labels drawn with P(positive | r) = r ** power."""
    r = rng.beta(a, b, n)
    return r, rng.random(n) < r ** power


@pytest.fixture(scope="module")
def calibration():
    rng = np.random.default_rng(0)
    r, y = draw(rng, 60_000)
    return build_calibration(y, r, threshold=THRESHOLD, of="probability of class 1", source="simulated")


def window(calibration, scores):
    bins = ScoreBins(calibration)
    bins.add(scores)
    return bins


def truth(rng, a, b, n=2_000_000):
    """The window distribution's metrics, from a sample so large that its own noise is negligible."""
    r, y = draw(rng, n, a, b)
    flagged = r >= THRESHOLD
    return {"precision": y[flagged].mean(), "recall": y[flagged].sum() / y.sum(), "roc_auc": roc_auc_score(y, r),
            "average_precision": average_precision_score(y, r),
            "cost_per_row": (3 * flagged.sum() + 150 * (y & ~flagged).sum()) / n}


def test_the_calibration_records_the_map_the_reliability_and_a_usable_check(calibration):
    assert calibration["rows"] == 60_000 and calibration["check"]["usable"] and calibration["check"]["statistic"] < 3
    assert THRESHOLD in calibration["edges"]
    # the map recovers P(positive | r) = r³ (the raw scores overstate it up to fivefold)
    grid = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    np.testing.assert_allclose(calibrated(grid, calibration), grid ** 3, atol=0.035)
    table = calibration["reliability"]
    assert len(table) == 10 and sum(b["rows"] for b in table) == 60_000
    for row in table:  # each bin's observed rate is what its calibrated scores expect
        assert abs(row["rate"] - row["mean_calibrated"]) < 0.02
        assert row["mean_score"] > row["rate"]  # and the raw score overstates it


def test_the_estimate_matches_the_truth_under_covariate_shift(calibration):
    """The window sees more high scores than the calibration data (Beta(2, 5) against Beta(1, 6))
    but the same relation between score and outcome: the estimate lands on the truth, and the
    realized figures of the window lie inside its bands."""
    rng = np.random.default_rng(11)  # one window; how often a window's figures leave the bands: the next test
    expected = truth(np.random.default_rng(2), 2.0, 5.0)
    r, y = draw(rng, 20_000, 2.0, 5.0)
    result = estimate(window(calibration, r), DECISION, tolerance=0.05)
    assert result["usable"] and result["rows"] == 20_000 and result["flagged"] == int((r >= THRESHOLD).sum())
    # the tolerances: the isotonic map's bias on data like this (about +0.01 on precision and
    # ROC AUC, measured over calibrations of other seeds), not the window's chance
    for name, tolerance in {"precision": 0.02, "recall": 0.03, "roc_auc": 0.015, "average_precision": 0.04, "cost_per_row": 0.15}.items():
        got = result["metrics"][name]["estimated"]
        assert abs(got - expected[name]) < tolerance, (name, got, expected[name])
    beside_realized(result, y, r, DECISION, min_labels=30)
    for name, entry in result["metrics"].items():
        assert entry["within"], (name, entry)
        assert entry["error"] == pytest.approx(entry["estimated"] - entry["realized"], abs=1e-6)
    assert result["metrics"]["roc_auc"]["realized"] == pytest.approx(roc_auc_score(y, r), abs=1e-6)
    assert warnings_of(result) == []


def test_the_bands_hold_the_realized_figure_about_as_often_as_they_say(calibration):
    """Over 200 windows of 3,000 rows from the calibration data's own distribution, the realized
    precision and ROC AUC fall inside the 95% band in about 95% of the windows (not always:
    the band is not wider than chance makes it)."""
    rng = np.random.default_rng(3)
    inside = {"precision": 0, "roc_auc": 0}
    for _ in range(200):
        r, y = draw(rng, 3_000)
        result = estimate(window(calibration, r), DECISION, tolerance=0.05)
        beside_realized(result, y, r, DECISION, min_labels=30)
        for name in inside:
            inside[name] += result["metrics"][name]["within"]
    for name, count in inside.items():
        assert 0.88 <= count / 200 <= 0.995, (name, count)


def test_a_changed_relation_is_invisible_before_labels_and_caught_once_they_arrive(calibration):
    """Concept drift: the same scores now mean fewer positives (P = r⁵). The estimate, from the
    scores alone, cannot know; once labels arrive the realized figures fall below the bands and
    the monitor warns. The other way round (P = r^1.5, more positives) is a note, not a warning."""
    rng = np.random.default_rng(4)
    r, y = draw(rng, 20_000, power=5.0)
    result = estimate(window(calibration, r), DECISION, tolerance=0.05)
    assert not any(m.get("dropped") for m in result["metrics"].values())
    beside_realized(result, y, r, DECISION, min_labels=30)
    assert result["metrics"]["precision"]["within"] is False
    said = warnings_of(result)
    assert any("realized precision" in w and "worse than the estimate's band" in w and "concept drift" in w for w in said)
    assert not any(n.startswith("realized precision") for n in notes_of(result))

    r, y = draw(rng, 20_000, power=1.5)
    better = estimate(window(calibration, r), DECISION, tolerance=0.05)
    beside_realized(better, y, r, DECISION, min_labels=30)
    assert better["metrics"]["precision"]["within"] is False
    assert not any("precision" in w for w in warnings_of(better))
    assert any(n.startswith("realized precision") and "better than the estimate's band" in n for n in notes_of(better))


def test_an_estimated_drop_is_flagged_before_labels(calibration):
    """The window's scores crowd below and just above the threshold (uniform on 0–0.45): fewer
    sure positives, so the estimated precision and ROC AUC fall below the calibration data's
    beyond the tolerance — said before any label arrives."""
    rng = np.random.default_rng(5)
    result = estimate(window(calibration, rng.uniform(0, 0.45, 20_000)), DECISION, tolerance=0.05)
    for name in ("precision", "roc_auc"):
        entry = result["metrics"][name]
        assert entry["dropped"] and entry["estimated"] < entry["reference"] - 0.05, (name, entry)
    said = warnings_of(result)
    assert any(w.startswith("estimated precision") and "(before labels)" in w for w in said)


def test_score_bins_of_parts_merge_into_the_whole(calibration):
    rng = np.random.default_rng(6)
    r, _ = draw(rng, 9_000)
    whole = window(calibration, r)
    parts = [window(calibration, piece) for piece in np.array_split(r, 3)]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert (merged.rows == whole.rows).all()
    np.testing.assert_allclose(merged.expected, whole.expected, rtol=1e-12)
    assert estimate(merged, DECISION, 0.05) == estimate(whole, DECISION, 0.05)


def test_the_check_refuses_too_few_positives_and_a_map_that_does_not_carry():
    rng = np.random.default_rng(7)
    r, y = draw(rng, 400)  # about 10 positives
    few = build_calibration(y, r, threshold=THRESHOLD)["check"]
    assert not few["usable"] and f"calibrating needs at least {MIN_POSITIVES}" in few["reason"]
    # the second half's outcomes follow another relation: a map fitted on one half fails on the other
    r, y = draw(rng, 40_000)
    later = np.arange(len(r)) >= 20_000
    y = np.where(later, rng.random(len(r)) < r ** 0.7, y)
    changed = build_calibration(y, r, threshold=THRESHOLD)
    assert not changed["check"]["usable"] and changed["check"]["statistic"] > POOR_CALIBRATION
    assert "does not hold out of sample" in changed["check"]["reason"]
    result = estimate(window(changed, r), DECISION, tolerance=0.05)
    assert not result["usable"] and result["reason"] == changed["check"]["reason"]
    assert not any(m.get("dropped") for m in result["metrics"].values()) and warnings_of(result) == []


def test_bad_calibration_input_is_named():
    with pytest.raises(ValueError, match="0/1"):
        build_calibration(["a", "b"], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        build_calibration([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="one length"):
        build_calibration([0, 1, 1], [0.1, 0.2])
