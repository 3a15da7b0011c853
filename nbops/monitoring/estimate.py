"""Performance estimated before labels arrive, from the scores alone (confidence-based, as
NannyML's CBPE), with the calibration the reference profile records (calibration.py).

A calibrated score q is the chance its row is positive. Over a window, the expected true
positives at the decision threshold are the sum of q over the flagged rows, the expected false
positives the sum of 1 − q there, the expected missed positives the sum of q below it; precision,
recall and the decision's cost follow, and so do ROC AUC and average precision, counting each row
as q of a positive and 1 − q of a negative in the score's ranking. The estimate needs only, per
bin of score (the calibration's `edges`, which include the threshold), the rows, the sum of q and
the sum of q(1 − q): `ScoreBins` keeps them, mergeable across parts like every accumulator.

How far the realized figure may fall from the estimate by chance alone is drawn, DRAWS times:
the map is off by its own standard error (each block of the isotonic map by its rate's, from the
calibration rows it rests on), and each bin's positives are drawn from a binomial of its rows
and their mean chance, the draw's deviation widened by the square root of the calibration data's
dispersion (positives that come in bursts vary more than independent rows); the 2.5% and 97.5%
quantiles of a metric are its band.
Once the window's labels arrive, the realized figure is shown beside the estimate, and one
outside its band says the relation between scores and outcomes has changed since calibration
(concept drift: what a score-only estimate cannot see), or that rows are not independent.

The estimate assumes that relation holds — the shift is in what the model sees (covariate
shift), not in what a score means. A new fraud pattern the model scores low is invisible to
it: the estimate keeps the recall the model had, until labels show otherwise.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .calibration import calibrated

#: Monte Carlo draws for the bands (seeded: the same window gives the same band).
DRAWS = 400
SEED = 0
#: The estimated metrics: name -> higher is better.
METRICS = {"precision": True, "recall": True, "roc_auc": True, "average_precision": True, "cost_per_row": False}


class ScoreBins:
    """A window's scores as rows, Σq and Σq(1 − q) per bin of the calibration's edges."""

    kind = "numeric"  # sources.py adds score arrays to it as to a numeric accumulator

    def __init__(self, calibration: Mapping[str, Any]) -> None:
        import numpy as np

        self.calibration = calibration
        self.edges = np.asarray(calibration["edges"], dtype=float)
        bins = len(self.edges) + 1  # below the first edge, between edges, from the last one up
        self.rows = np.zeros(bins, dtype=np.int64)
        self.expected = np.zeros(bins)
        self.variance = np.zeros(bins)
        self.score_sum = np.zeros(bins)  # where in its bin the scores lie (the map's error is drawn there)

    def add(self, scores: Any) -> None:
        import numpy as np

        s = np.asarray(scores, dtype=float)
        s = s[np.isfinite(s)]
        if not s.size:
            return
        q = calibrated(s, self.calibration)
        index = np.searchsorted(self.edges, s, side="right")
        n = len(self.rows)
        self.rows += np.bincount(index, minlength=n)
        self.expected += np.bincount(index, weights=q, minlength=n)
        self.variance += np.bincount(index, weights=q * (1 - q), minlength=n)
        self.score_sum += np.bincount(index, weights=s, minlength=n)

    def merge(self, other: ScoreBins) -> ScoreBins:
        self.rows += other.rows
        self.expected += other.expected
        self.variance += other.variance
        self.score_sum += other.score_sum
        return self

    def draws(self, count: int, seed: int = SEED) -> Any:
        """`count` draws of each bin's positives: the map's own error (each block of the map off
        by its rate's standard error, one draw for the whole block), then the rows' chance."""
        import numpy as np

        rng = np.random.default_rng(seed)
        points = self.calibration["map"]
        x, y = np.asarray(points["x"], dtype=float), np.asarray(points["y"], dtype=float)
        rows = np.asarray(points.get("rows") or [0] * len(x), dtype=float)
        block = np.cumsum(np.r_[True, y[1:] != y[:-1]]) - 1
        first = np.r_[0, np.flatnonzero(np.diff(block)) + 1]  # each block's first point
        m, rate = rows[first], y[first]
        smoothed = (rate * m + 1) / (m + 2)  # a block with no positive is not certain of none
        error = np.where(m > 0, np.sqrt(smoothed * (1 - smoothed) / np.maximum(m, 1)), 0.0)
        shifts = rng.normal(0.0, 1.0, size=(count, len(first))) * error  # per draw, per block
        centre = np.where(self.rows > 0, self.score_sum / np.maximum(self.rows, 1), 0.0)
        per_bin = np.stack([np.interp(centre, x, shift[block]) for shift in shifts])
        rate = np.clip(np.where(self.rows > 0, self.expected / np.maximum(self.rows, 1), 0.0) + per_bin, 0.0, 1.0)
        # binomial, not normal: most bins expect a fraction of a positive, where a normal draw
        # clipped at zero would shrink the spread; widened by the calibration data's dispersion
        counts = np.broadcast_to(self.rows, rate.shape)
        drawn = rng.binomial(counts, rate).astype(float)
        spread = math.sqrt(max(float(self.calibration.get("dispersion") or 1.0), 1.0))
        if spread > 1.0:
            drawn = np.clip(counts * rate + spread * (drawn - counts * rate), 0, counts)
        return drawn

    @property
    def count(self) -> int:
        return int(self.rows.sum())

    def flagged(self, threshold: float | None) -> Any:
        """Which bins hold scores at or above the threshold (a bin never straddles it: it is an edge)."""
        import numpy as np

        bins = np.arange(len(self.rows))
        if threshold is None:
            return np.zeros(len(self.rows), dtype=bool)
        return bins >= np.searchsorted(self.edges, threshold, side="right")


def metrics_of(rows: Any, positives: Any, flagged: Any, costs: tuple[float, float] | None) -> dict[str, Any]:
    """The metrics of bins holding `rows` rows and `positives` positives (expected or drawn: the
    last axis is the bins', earlier axes are draws), bins in increasing score order, ties within
    a bin counted as half."""
    import numpy as np

    rows = rows.astype(float)
    negatives = rows - positives
    total_pos, total_neg = positives.sum(-1), negatives.sum(-1)
    flagged_rows = rows[..., flagged].sum(-1)
    true_pos = positives[..., flagged].sum(-1)
    missed = total_pos - true_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "precision": np.where(flagged_rows > 0, true_pos / flagged_rows, np.nan),
            "recall": np.where(total_pos > 0, true_pos / total_pos, np.nan),
        }
        below = np.cumsum(negatives, -1) - negatives  # negatives in lower bins
        pairs = (positives * (below + 0.5 * negatives)).sum(-1)
        out["roc_auc"] = np.where((total_pos > 0) & (total_neg > 0), pairs / (total_pos * total_neg), np.nan)
        # average precision from the top: precision at each bin's threshold, weighted by its positives
        top_pos = np.cumsum(positives[..., ::-1], -1)
        top_rows = np.cumsum(rows[..., ::-1], -1)
        precision_at = np.where(top_rows > 0, top_pos / np.maximum(top_rows, 1e-300), 0.0)
        out["average_precision"] = np.where(total_pos > 0, (positives[..., ::-1] * precision_at).sum(-1) / total_pos, np.nan)
        if costs is not None:
            review, miss = costs
            total_rows = rows.sum(-1)
            out["cost_per_row"] = np.where(total_rows > 0, (review * flagged_rows + miss * missed) / total_rows, np.nan)
    return out


def estimate(bins: ScoreBins, decision: Mapping[str, Any] | None, tolerance: float) -> dict[str, Any]:
    """The window's estimated metrics, their bands, and the calibration data's figures beside them."""
    import numpy as np

    calibration = bins.calibration
    threshold = _threshold(decision, calibration)
    costs = _costs(decision)
    flagged = bins.flagged(threshold)
    check = calibration.get("check") or {}
    usable = bool(check.get("usable"))
    result: dict[str, Any] = {
        "of": calibration.get("of") or "score", "rows": bins.count, "threshold": threshold,
        "expected_positives": _round(float(bins.expected.sum())),
        "flagged": int(bins.rows[flagged].sum()),
        "usable": usable,
        "calibration": {key: calibration.get(key) for key in ("rows", "positives", "source")}
        | {"statistic": check.get("statistic"), "limit": check.get("limit")},
        "tolerance": tolerance, "metrics": {},
    }
    if not usable:
        result["reason"] = check.get("reason") or "the profile's calibration was not checked"
    if not bins.count:
        return result
    point = metrics_of(bins.rows, bins.expected, flagged, costs)
    drawn = metrics_of(bins.rows, bins.draws(DRAWS), flagged, costs)
    reference = calibration.get("reference") or {}
    if costs is not None and "flagged_rate" in reference and "recall" in reference:
        rate = reference.get("positive_rate", 0.0)
        reference = {**reference, "cost_per_row": costs[0] * reference["flagged_rate"] + costs[1] * rate * (1 - reference["recall"])}
    for name, higher in METRICS.items():
        if name not in point or not np.isfinite(point[name]):
            continue
        values = drawn[name][np.isfinite(drawn[name])]
        entry: dict[str, Any] = {"estimated": _round(float(point[name]))}
        if values.size:
            entry.update({"sd": _round(float(values.std())), "low": _round(float(np.quantile(values, 0.025))),
                          "high": _round(float(np.quantile(values, 0.975)))})
        before = reference.get(name)
        if isinstance(before, (int, float)):
            entry["reference"] = _round(float(before))
            if name != "cost_per_row":  # costs are money, not comparable with the tolerance
                worse_by = (before - point[name]) if higher else (point[name] - before)
                entry["dropped"] = bool(usable and worse_by > tolerance)
        result["metrics"][name] = entry
    return result


def beside_realized(result: dict[str, Any], labels: Any, scores: Any, decision: Mapping[str, Any] | None,
                    min_labels: int) -> None:
    """Add the realized figures of the labelled rows (labels: True for the positive class) beside
    the estimates: realized, error (estimate − realized), and whether it lies inside the band."""
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    keep = np.isfinite(s)
    y, s = y[keep], s[keep]
    result["labelled_rows"] = int(len(y))
    if not len(y):
        return
    realized: dict[str, float] = {}
    threshold = result.get("threshold")
    if threshold is not None:
        flagged = s >= threshold
        if flagged.any():
            realized["precision"] = float(y[flagged].mean())
        if y.any():
            realized["recall"] = float(y[flagged].sum() / y.sum())
        costs = _costs(decision)
        if costs is not None:
            realized["cost_per_row"] = float((costs[0] * flagged.sum() + costs[1] * (y & ~flagged).sum()) / len(y))
    if y.any() and not y.all():
        realized["roc_auc"] = float(roc_auc_score(y, s))
        realized["average_precision"] = float(average_precision_score(y, s))
    for name, entry in result["metrics"].items():
        if name not in realized:
            continue
        entry["realized"] = _round(realized[name])
        entry["error"] = _round(entry["estimated"] - realized[name])
        if "low" in entry and len(y) >= min_labels:
            entry["within"] = bool(entry["low"] - 1e-9 <= realized[name] <= entry["high"] + 1e-9)


def warnings_of(result: Mapping[str, Any]) -> list[str]:
    """What the estimate has to say in the monitor's warnings: an estimated drop (before labels),
    and a realized figure worse than its estimate's band (see `notes_of` for one better than it)."""
    out = []
    if not result.get("usable"):
        return out
    for name, entry in (result.get("metrics") or {}).items():
        if entry.get("dropped") and "realized" not in entry:
            out.append(f"estimated {name} {entry['estimated']:.3g} (before labels) is worse than the calibration data's "
                       f"{entry['reference']:.3g} by more than the tolerance {result['tolerance']:g}")
        if entry.get("within") is False and _worse_than_band(name, entry):
            out.append(f"realized {name} {entry['realized']:.3g} is worse than the estimate's band {entry['low']:.3g}–{entry['high']:.3g}: "
                       "what a score means has changed since calibration (concept drift), so estimates no longer hold")
    return out


def notes_of(result: Mapping[str, Any]) -> list[str]:
    """A realized figure better than its estimate's band: worth knowing (the calibration undersells
    the model, say its out-of-fold models were weaker than the final one), not a warning."""
    if not result.get("usable"):
        return []
    return [f"realized {name} {entry['realized']:.3g} is better than the estimate's band {entry['low']:.3g}–{entry['high']:.3g}"
            for name, entry in (result.get("metrics") or {}).items()
            if entry.get("within") is False and not _worse_than_band(name, entry)]


def _worse_than_band(name: str, entry: Mapping[str, Any]) -> bool:
    higher = METRICS.get(name, True)
    return entry["realized"] < entry["low"] if higher else entry["realized"] > entry["high"]


def _threshold(decision: Mapping[str, Any] | None, calibration: Mapping[str, Any]) -> float | None:
    if decision and isinstance(decision.get("threshold"), (int, float)):
        return float(decision["threshold"])
    value = calibration.get("threshold")
    return float(value) if isinstance(value, (int, float)) else None


def _costs(decision: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """(review cost, miss cost) when the decision records both as numbers."""
    if not decision:
        return None
    review, miss = decision.get("review_cost"), decision.get("miss_cost")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (review, miss)):
        return float(review), float(miss)
    return None


def _round(value: float) -> float:
    return round(value, 6)
