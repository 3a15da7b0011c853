"""Decisions from scores: a threshold chosen by cost, cost curves, and precision at a daily budget.

A classifier's scores become actions — review this transaction, inspect this machine — and what
an action costs matters more than the ranking metric: reviewing costs a little every time, a
missed positive costs a lot. These are pure functions over arrays (numpy and pandas, imported
when called), used from notebook cells:

    choice = nbops.choose_threshold(y_val, scores_val, review_cost=3, miss_cost=150)
    nbops.save_model(model, "fraud-detector", sample_input=X.head(20), decision=choice)
    daily = nbops.precision_at_k(y_test, scores, k=100, groups=days, entities=cards)

`choose_threshold`'s answer is what `save_model(decision=...)` records in the manifest, so the
package applies the same threshold to every answer it serves.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

__all__ = ["choose_threshold", "cost_curve", "precision_at_k"]


def _binary(y_true: Any, scores: Any, where: str) -> tuple[Any, Any]:
    import numpy as np

    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(f"{where}: y_true and scores must be 1-dimensional and of equal length (got {y.shape} and {s.shape})")
    if len(y) == 0:
        raise ValueError(f"{where}: no rows")
    if not np.isfinite(s).all():
        raise ValueError(f"{where}: scores hold NaN or infinite values")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1, True, False}:
        raise ValueError(f"{where}: y_true must hold 0/1 labels (1: the positive class), got values {sorted(values)[:5]}")
    return y.astype(bool), s


def _costs(cost: Any, n: int, name: str, where: str) -> Any:
    import numpy as np

    array = np.asarray(cost, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(n, float(array))
    if array.shape != (n,):
        raise ValueError(f"{where}: {name} must be a number or one value per row ({n}), got shape {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{where}: {name} must be finite and not negative")
    return array


def choose_threshold(
    y_true: Any,
    scores: Any,
    *,
    review_cost: float | Sequence[float],
    miss_cost: float | Sequence[float],
    positive_class: Any = 1,
) -> dict[str, Any]:
    """The score threshold that minimises the total cost of decisions on labelled data.

    A row whose score is at least the threshold is flagged (reviewed) and costs `review_cost`;
    a positive row below it is missed and costs `miss_cost`. Either cost may be one number or
    one value per row (a missed fraud loses its own amount). Every distinct score is tried, and
    flagging nothing; among equal costs the highest threshold (fewest reviews) wins.

    Returns a JSON-ready dict for `save_model(decision=...)`: threshold, positive_class,
    chosen_by="cost", the costs (numbers, or "per row"), the cost at the threshold and of the
    two extremes (flag nothing, flag everything), rows, positives and rows flagged.
    """
    import numpy as np

    where = "choose_threshold"
    y, s = _binary(y_true, scores, where)
    n = len(y)
    review = _costs(review_cost, n, "review_cost", where)
    miss = _costs(miss_cost, n, "miss_cost", where)
    order = np.argsort(-s, kind="stable")
    sorted_scores = s[order]
    reviewed = np.cumsum(review[order])                        # flagging the first i+1 rows
    missed = (miss * y).sum() - np.cumsum((miss * y)[order])   # positives left below
    last_of_run = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]  # a threshold keeps ties together
    candidates = np.flatnonzero(last_of_run)
    costs = reviewed[candidates] + missed[candidates]
    nothing = float((miss * y).sum())
    best = int(np.argmin(costs))
    if costs[best] < nothing:
        index = candidates[best]
        threshold, total, flagged = float(sorted_scores[index]), float(costs[best]), int(index + 1)
    else:  # reviewing costs more than it saves: flag nothing (a threshold above every score)
        threshold, total, flagged = float(np.nextafter(sorted_scores[0], np.inf)), nothing, 0
    return {
        "threshold": threshold,
        "positive_class": _plain(positive_class),
        "chosen_by": "cost",
        "review_cost": _describe_cost(review_cost),
        "miss_cost": _describe_cost(miss_cost),
        "cost": round(total, 6),
        "cost_flag_nothing": round(nothing, 6),
        "cost_flag_everything": round(float(review.sum()), 6),
        "rows": n,
        "positives": int(y.sum()),
        "flagged": flagged,
    }


def _describe_cost(cost: Any) -> Any:
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        return cost
    if hasattr(cost, "ndim") and getattr(cost, "ndim") == 0:
        return float(cost)
    return "per row"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def cost_curve(
    y_true: Any,
    scores: Any,
    *,
    review_cost: float | Sequence[float],
    miss_cost: float | Sequence[float],
    thresholds: Sequence[float] | int = 101,
) -> Any:
    """The cost of deciding at each threshold, as a DataFrame (threshold, flagged, missed,
    review_cost, miss_cost, cost) ready for `nbops.log_plot`. `thresholds` is a list, or a number
    of evenly spaced thresholds from 0 to 1."""
    import numpy as np
    import pandas as pd

    where = "cost_curve"
    y, s = _binary(y_true, scores, where)
    review = _costs(review_cost, len(y), "review_cost", where)
    miss = _costs(miss_cost, len(y), "miss_cost", where)
    grid = np.linspace(0.0, 1.0, thresholds) if isinstance(thresholds, int) else np.asarray(thresholds, dtype=np.float64)
    order = np.argsort(s, kind="stable")
    sorted_scores = s[order]
    # rows with a score below t: the first searchsorted(t, "left") of the ascending order
    below = np.searchsorted(sorted_scores, grid, side="left")
    cum_review = np.r_[0.0, np.cumsum(review[order])]
    cum_missed = np.r_[0.0, np.cumsum((miss * y)[order])]
    cum_positives = np.r_[0, np.cumsum(y[order])]
    review_total = cum_review[-1] - cum_review[below]
    miss_total = cum_missed[below]
    return pd.DataFrame({
        "threshold": np.round(grid, 6),
        "flagged": len(y) - below,
        "missed": cum_positives[below],
        "review_cost": np.round(review_total, 4),
        "miss_cost": np.round(miss_total, 4),
        "cost": np.round(review_total + miss_total, 4),
    })


def precision_at_k(
    y_true: Any,
    scores: Any,
    *,
    k: int,
    groups: Any = None,
    entities: Any = None,
    exclude_found: bool = True,
) -> Any:
    """Precision of the `k` highest-scored entities in each group: what a team that reviews `k`
    cases a day finds. Returns a DataFrame with one row per group (in sorted order): group,
    precision (hits / k), hits, and the positive entities there were to find; its
    `precision.mean()` is the figure usually reported (card precision@k when the groups are days
    and the entities are cards).

    With `entities`, an entity's score in a group is its highest score there and it is positive
    when any of its rows is. With `exclude_found`, an entity found (positive, in a group's top k)
    is left out of every later group: it is already known, as a blocked card is.
    Without `groups` all rows form one group; without `entities` each row is its own entity.
    """
    import numpy as np
    import pandas as pd

    where = "precision_at_k"
    y, s = _binary(y_true, scores, where)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{where}: k must be a positive integer, got {k!r}")
    n = len(y)
    frame = pd.DataFrame({
        "group": np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups),
        "entity": np.arange(n) if entities is None else np.asarray(entities),
        "score": s,
        "label": y,
    })
    if len(frame["group"]) != n or len(frame["entity"]) != n:
        raise ValueError(f"{where}: groups and entities must have one value per row ({n})")
    # One row per (group, entity): its highest score, and whether any of its rows is positive.
    per_entity = frame.groupby(["group", "entity"], sort=True).agg(score=("score", "max"), label=("label", "max")).reset_index()
    found: set[Any] = set()
    rows = []
    for group, day in per_entity.groupby("group", sort=True):  # a loop over groups (days), not rows
        if exclude_found and found:
            day = day[~day["entity"].isin(found)]
        top = day.sort_values(["score", "entity"], ascending=[False, True], kind="stable").head(k)
        hits = top.loc[top["label"], "entity"]
        rows.append({
            "group": _plain(group), "precision": len(hits) / k, "hits": int(len(hits)),
            "positives": int(day["label"].sum()),
        })
        if exclude_found:
            found.update(hits.tolist())
    return pd.DataFrame(rows, columns=["group", "precision", "hits", "positives"])


def _check_threshold(value: Any, where: str) -> float:
    """A decision threshold as a finite float (the manifest's `decision.threshold`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError(f"{where}: the decision threshold must be a finite number, got {value!r}")
    return float(value)
