"""The calibration a reference profile records: how often the positive class occurred at each
score, on labelled data the model was not trained on. It is what estimating performance before
labels arrive needs (estimate.py): a calibrated score is the chance that the row is positive, so
a window's expected true and false positives at any threshold follow from its scores alone
(NannyML's confidence-based performance estimation, CBPE).

`build_calibration(y, scores, threshold=…)` runs inside the kernel (`nbops.save_model(…,
calibration=(y_val, scores_val))`) and returns the profile's `calibration` entry:

map          the isotonic regression of the label on the score (scikit-learn's
             IsotonicRegression, increasing, clipped outside the seen scores; each block's rate
             smoothed to (positives + 2p) / (rows + 2), p the overall rate): points x → y, with
             linear interpolation between them, as IsotonicRegression.predict does; and for each
             point the rows its block rests on (the map's own uncertainty)
edges        score bin edges for the estimate: quantiles of all scores and of the positives'
             scores, the map's points and the decision threshold (so a bin is either flagged or
             not); a window's estimate needs only per-bin counts and sums (mergeable)
reliability  the reliability table: RELIABILITY_BINS bins of equal positives by score, each
             with its rows, positives, mean score, mean calibrated score and observed rate
dispersion   how much more positives vary between stretches of rows than independent rows
             would (at least 1): the estimate's bands widen by its square root
reference    the realized figures on these labelled rows (precision and recall at the
             threshold, ROC AUC, average precision, positive rate): what an estimate is
             compared with before any label of the window arrives
check        whether the calibration holds well enough for an estimate to mean anything

When it does not (`check.usable` false, `check.reason` says why), monitoring still shows the
estimate but marks it as meaningless and never lets it change the status. The criterion:

* at least MIN_POSITIVES positive and MIN_NEGATIVES negative rows (fewer cannot be calibrated:
  a step of the map would rest on one or two frauds);
* the calibration holds out of sample. The rows are cut in two halves in their given (time)
  order; the map fitted on each half calibrates the other. Binned into RELIABILITY_BINS bins of
  equal expected positives, the out-of-sample calibrated scores give expected positives E and
  variance V (the sum of q(1 − q), at least 1) per bin against the observed O; the statistic
  Σ (O − E)² / V is a chi-square with RELIABILITY_BINS degrees of freedom when the scores are
  calibrated and rows independent. The calibration is too poor when the statistic exceeds
  POOR_CALIBRATION × RELIABILITY_BINS: the bins miss their observed positives by more than
  POOR_CALIBRATION ** 0.5 standard deviations on average. (A strict chi-square test at 5%
  would refuse almost every real fraud stream: frauds come in bursts — a compromised terminal
  makes many — so their counts vary more than independent rows would. The limit accepts that
  and still refuses a map that does not carry from one half to the other.)
"""

from __future__ import annotations

import math
from typing import Any, Mapping

#: Fewer labelled positives (or negatives) than this: no usable calibration.
MIN_POSITIVES = 30
MIN_NEGATIVES = 30
#: Bins of the reliability table and of the out-of-sample check.
RELIABILITY_BINS = 10
#: The check's limit: mean (O − E)² / V per bin above this is too poor a calibration.
POOR_CALIBRATION = 9.0
#: Quantiles of all scores and of the positives' scores among the estimate's bin edges.
SCORE_QUANTILES = 200
POSITIVE_QUANTILES = 50


def build_calibration(y_true: Any, scores: Any, *, threshold: float | None = None, of: str = "", source: str = "") -> dict[str, Any]:
    """The profile's `calibration` entry from labelled scores (1/True: the positive class) of rows
    the model was not trained on. ValueError for arrays that do not fit."""
    import numpy as np

    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(f"the labels and scores must be two 1-dimensional arrays of one length (got {y.shape} and {s.shape})")
    if len(y) == 0:
        raise ValueError("no rows")
    if not np.isfinite(s).all():
        raise ValueError("the scores hold NaN or infinite values")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1, True, False}:
        raise ValueError(f"the labels must be 0/1 (1: the positive class), got values {sorted(map(str, values))[:5]}")
    y = y.astype(bool)
    x_map, y_map = fit_map(y, s)
    entry: dict[str, Any] = {
        "of": of, "source": source, "rows": int(len(y)), "positives": int(y.sum()),
        "threshold": None if threshold is None else float(threshold),
        "map": {"x": [_float(v) for v in x_map], "y": [_float(v) for v in y_map], "rows": block_rows(s, x_map, y_map)},
        "edges": [_float(v) for v in bin_edges(s, y, x_map, threshold)],
        "reliability": reliability(y, s, x_map, y_map),
        "reference": realized(y, s, threshold),
        "dispersion": dispersion(y, np.interp(s, x_map, y_map)),
        "check": check(y, s),
    }
    return entry


def dispersion(y: Any, q: Any, chunks: int = RELIABILITY_BINS) -> float:
    """How much more the positives vary between stretches of rows than independent rows would:
    the mean of (O − E)² / V over `chunks` consecutive stretches (in the rows' given order, time
    for a stream), at least 1. Frauds come in bursts — a compromised terminal makes many — so a
    window's realized figures stray further from the estimate than row-by-row chance allows;
    estimate.py widens its bands by the square root of this."""
    import numpy as np

    stretches = [part for part in np.array_split(np.arange(len(y)), chunks) if len(part)]
    terms = [(float(y[part].sum()) - float(q[part].sum())) ** 2 / max(float((q[part] * (1 - q[part])).sum()), 1.0)
             for part in stretches]
    return _round(max(1.0, float(np.mean(terms)))) if terms else 1.0


def fit_map(y: Any, s: Any) -> tuple[Any, Any]:
    """The isotonic regression of y on s as its points (scikit-learn's X_thresholds_,
    y_thresholds_), each block's rate smoothed to (positives + 2 p) / (rows + 2), p the overall
    rate: a top block of two frauds must not say "certainly fraud", nor the lowest block "never"
    (both would bias estimates at the extremes, where isotonic regression is least sure); then
    kept increasing."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(s, y.astype(float))
    x_map, y_map = iso.X_thresholds_, iso.y_thresholds_
    rows = np.asarray(block_rows(s, x_map, y_map), dtype=float)
    block = np.cumsum(np.r_[True, y_map[1:] != y_map[:-1]]) - 1
    first = np.r_[0, np.flatnonzero(np.diff(block)) + 1]
    m = rows[first]
    prior = float(y.mean())  # two rows' worth of the overall rate: a block's own rows soon outweigh it
    smoothed = (y_map[first] * m + 2 * prior) / (m + 2)
    # smoothing can put a small block above a bigger one after it: pool them again (weighted)
    pooled = IsotonicRegression(increasing=True).fit(np.arange(len(first)), smoothed, sample_weight=m + 2).predict(np.arange(len(first)))
    return x_map, pooled[block]


def block_rows(s: Any, x_map: Any, y_map: Any) -> list[int]:
    """For each point of the map, how many calibration rows its block (a run of points of one
    value) rests on: how sure the map is there (estimate.py draws the map's own error from it)."""
    import numpy as np

    x_map, y_map = np.asarray(x_map, dtype=float), np.asarray(y_map, dtype=float)
    block = np.cumsum(np.r_[True, y_map[1:] != y_map[:-1]]) - 1
    ordered = np.sort(s)
    rows = []
    for b in range(int(block[-1]) + 1 if len(block) else 0):
        members = x_map[block == b]
        count = np.searchsorted(ordered, members[-1], side="right") - np.searchsorted(ordered, members[0], side="left")
        rows.append(int(count))
    return [rows[b] for b in block]


def calibrated(scores: Any, calibration: Mapping[str, Any]) -> Any:
    """Calibrated scores: the chance each row is positive (the map, interpolated; clipped outside)."""
    import numpy as np

    points = calibration["map"]
    return np.interp(np.asarray(scores, dtype=float), points["x"], points["y"])


def bin_edges(s: Any, y: Any, x_map: Any, threshold: float | None) -> Any:
    """The estimate's bin edges (see the module's docstring)."""
    import numpy as np

    parts = [np.quantile(s, np.linspace(0, 1, SCORE_QUANTILES + 1), method="lower"), np.asarray(x_map, dtype=float)]
    if y.any():
        parts.append(np.quantile(s[y], np.linspace(0, 1, POSITIVE_QUANTILES + 1), method="lower"))
    if threshold is not None:
        parts.append(np.asarray([float(threshold)]))
    return np.unique(np.concatenate(parts))


def reliability(y: Any, s: Any, x_map: Any, y_map: Any) -> list[dict[str, Any]]:
    """RELIABILITY_BINS bins of (about) equal positives by score: rows, positives, mean score,
    mean calibrated score, observed rate."""
    import numpy as np

    order = np.argsort(s, kind="stable")
    cumulative = np.cumsum(y[order])
    total = int(cumulative[-1]) if len(cumulative) else 0
    if total == 0:
        cuts = [0, len(s)]
    else:
        targets = [total * k / RELIABILITY_BINS for k in range(1, RELIABILITY_BINS)]
        cuts = sorted({0, len(s), *(int(np.searchsorted(cumulative, t, side="left")) + 1 for t in targets)})
    q = np.interp(s[order], x_map, y_map)
    table = []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        if hi <= lo:
            continue
        rows = hi - lo
        positives = int(y[order][lo:hi].sum())
        table.append({
            "scores": [_float(s[order][lo]), _float(s[order][hi - 1])], "rows": int(rows), "positives": positives,
            "mean_score": _round(float(s[order][lo:hi].mean())), "mean_calibrated": _round(float(q[lo:hi].mean())),
            "rate": _round(positives / rows),
        })
    return table


def realized(y: Any, s: Any, threshold: float | None) -> dict[str, Any]:
    """The figures these labelled rows realize: what a window's estimate is compared with."""
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score

    out: dict[str, Any] = {"rows": int(len(y)), "positive_rate": _round(float(y.mean()))}
    if y.any() and not y.all():
        out["roc_auc"] = _round(float(roc_auc_score(y, s)))
        out["average_precision"] = _round(float(average_precision_score(y, s)))
    if threshold is not None:
        flagged = s >= threshold
        out["flagged_rate"] = _round(float(flagged.mean()))
        out["precision"] = _round(float(y[flagged].mean())) if flagged.any() else None
        out["recall"] = _round(float(y[flagged].sum() / y.sum())) if y.any() else None
    return {k: v for k, v in out.items() if v is not None}


def check(y: Any, s: Any) -> dict[str, Any]:
    """Whether the calibration is usable (the criterion in the module's docstring)."""
    import numpy as np

    positives, negatives = int(y.sum()), int((~y).sum())
    result: dict[str, Any] = {
        "method": "out of sample: the map of each half (in the rows' order) calibrates the other; "
                  f"{RELIABILITY_BINS} bins of equal expected positives; mean (O - E)^2 / V per bin",
        "limit": POOR_CALIBRATION, "min_positives": MIN_POSITIVES,
    }
    if positives < MIN_POSITIVES or negatives < MIN_NEGATIVES:
        return {**result, "usable": False, "statistic": None,
                "reason": f"{positives} positive and {negatives} negative labelled rows; calibrating needs at least "
                          f"{MIN_POSITIVES} and {MIN_NEGATIVES}"}
    half = len(y) // 2
    q = np.empty(len(y))
    for fit, apply in ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))):
        if y[fit].any() and not y[fit].all():
            x_map, y_map = fit_map(y[fit], s[fit])
            q[apply] = np.interp(s[apply], x_map, y_map)
        else:  # one half holds a single class: its "map" is that constant rate
            q[apply] = float(y[fit].mean())
    statistic = out_of_sample_statistic(y, q)
    usable = statistic <= POOR_CALIBRATION
    result.update({"statistic": _round(statistic), "usable": bool(usable)})
    if not usable:
        result["reason"] = (f"the calibration does not hold out of sample: its bins miss their observed positives by "
                            f"{math.sqrt(statistic):.1f} standard deviations on average (limit {math.sqrt(POOR_CALIBRATION):.0f})")
    return result


def out_of_sample_statistic(y: Any, q: Any, bins: int = RELIABILITY_BINS) -> float:
    """Mean (O − E)² / V over `bins` bins of equal expected positives by calibrated score q."""
    import numpy as np

    order = np.argsort(q, kind="stable")
    qs, ys = q[order], y[order].astype(float)
    expected = np.cumsum(qs)
    total = expected[-1]
    if total <= 0:
        return math.inf if ys.any() else 0.0
    bin_of = np.minimum((expected / total * bins).astype(int), bins - 1)  # by cumulative expected positives
    E = np.bincount(bin_of, weights=qs, minlength=bins)
    O = np.bincount(bin_of, weights=ys, minlength=bins)
    # at least one positive's variance: a map step at exactly 0 or 1 (isotonic regression makes
    # them where a half saw only one class) must not turn one surprise into an infinite statistic
    V = np.maximum(np.bincount(bin_of, weights=qs * (1 - qs), minlength=bins), 1.0)
    return float(((O - E) ** 2 / V).mean())


def describe(calibration: Mapping[str, Any]) -> dict[str, Any]:
    """What the manifest says of a calibration: its rows, positives and whether it is usable."""
    check_entry = calibration.get("check") or {}
    return {"rows": calibration.get("rows"), "positives": calibration.get("positives"),
            "usable": check_entry.get("usable"), "source": calibration.get("source")}


def validate(calibration: Any, where: str) -> None:
    """ValueError naming `where` for a calibration entry this version cannot read."""
    if not isinstance(calibration, dict):
        raise ValueError(f"{where}: 'calibration' must be an object")
    points = calibration.get("map")
    if not isinstance(points, dict) or not isinstance(points.get("x"), list) or len(points.get("x") or []) != len(points.get("y") or []) \
            or not points["x"]:
        raise ValueError(f"{where}: the calibration's map needs points x and y of one length")
    edges = calibration.get("edges")
    if not isinstance(edges, list) or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"{where}: the calibration's edges must be an increasing list of scores")


def _float(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _round(value: float) -> float:
    return round(value, 6)
