"""Live performance: labels that arrive later, joined to what the model answered, scored with
the metrics the pipeline's evaluation recorded, and compared with the manifest's values.

Labels: a CSV or JSON-lines file with `request_id` (+ `row`, default 0) and `label`, joined to
captured rows (request_id, row); or, with a key column, `<key>` and `label`, joined to the rows
whose input `<key>` has that value (also for --data files).

Metrics are found by name (METRICS; `register_metric` adds one): a name the manifest holds that
no function computes is reported as not computed, never guessed.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

from ..core.exceptions import MonitorError

#: name -> (input: "scores" | "predictions", higher_is_better, function(y_true, values))
METRICS: dict[str, tuple[str, bool, Callable[[Any, Any], float]]] = {}


def register_metric(name: str, uses: str, higher_is_better: bool = True) -> Callable[[Callable[[Any, Any], float]], Callable[[Any, Any], float]]:
    """Add a live metric: `uses` "scores" (the positive class's probability) or "predictions"."""
    def decorate(function: Callable[[Any, Any], float]) -> Callable[[Any, Any], float]:
        METRICS[name] = (uses, higher_is_better, function)
        return function

    return decorate


def _sk(name: str) -> Callable[..., float]:
    import sklearn.metrics

    return getattr(sklearn.metrics, name)


@register_metric("roc_auc", "scores")
def _roc_auc(y: Any, s: Any) -> float:
    return _sk("roc_auc_score")(y, s)


@register_metric("average_precision", "scores")
def _average_precision(y: Any, s: Any) -> float:
    return _sk("average_precision_score")(y, s)


@register_metric("log_loss", "scores", higher_is_better=False)
def _log_loss(y: Any, s: Any) -> float:
    return _sk("log_loss")(y, s, labels=[False, True])


@register_metric("brier", "scores", higher_is_better=False)
def _brier(y: Any, s: Any) -> float:
    return _sk("brier_score_loss")(y, s)


for _name, _function in (("f1", "f1_score"), ("recall", "recall_score"), ("precision", "precision_score")):
    register_metric(_name, "predictions")(lambda y, p, _f=_function: _sk(_f)(y, p, zero_division=0))
register_metric("accuracy", "predictions")(lambda y, p: _sk("accuracy_score")(y, p))
register_metric("balanced_accuracy", "predictions")(lambda y, p: _sk("balanced_accuracy_score")(y, p))
register_metric("mae", "scores", higher_is_better=False)(lambda y, s: _sk("mean_absolute_error")(y, s))
register_metric("mse", "scores", higher_is_better=False)(lambda y, s: _sk("mean_squared_error")(y, s))
register_metric("rmse", "scores", higher_is_better=False)(lambda y, s: _sk("mean_squared_error")(y, s) ** 0.5)
register_metric("r2", "scores")(lambda y, s: _sk("r2_score")(y, s))


# --- labels -----------------------------------------------------------------------------------------


def load_labels(path: str, key_column: str | None) -> tuple[dict[Any, Any], str]:
    """Labels keyed by (request_id, row), or by the key column's value; and the join's name."""
    rows = _read_rows(path)
    if not rows:
        raise MonitorError(f"--labels {path}: no rows")
    columns = set(rows[0])
    if "label" not in columns:
        raise MonitorError(f"--labels {path}: no 'label' column (columns: {', '.join(sorted(columns))})")
    if key_column:
        if key_column not in columns:
            raise MonitorError(f"--labels {path}: no '{key_column}' column to join on (--key {key_column})")
        return {_key(r[key_column]): r["label"] for r in rows if r.get("label") not in (None, "")}, f"key column '{key_column}'"
    if "request_id" not in columns:
        raise MonitorError(
            f"--labels {path}: needs a 'request_id' column (and optionally 'row'), or pass --key COLUMN to join on an input column"
        )
    labels = {}
    for r in rows:
        if r.get("label") in (None, ""):
            continue
        try:
            row = int(r.get("row") or 0)
        except (TypeError, ValueError):
            raise MonitorError(f"--labels {path}: row {r.get('row')!r} of request {r.get('request_id')} is not an integer") from None
        labels[(str(r["request_id"]), row)] = r["label"]
    return labels, "request id"


def _key(value: Any) -> Any:
    """Key values as the capture holds them: numbers from CSV text become numbers."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "." not in value else number
    return value


def _read_rows(path: str) -> list[dict[str, Any]]:
    import fsspec

    try:
        with fsspec.open(path, "rt", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise MonitorError(f"--labels {path}: file not found") from None
    if path.lower().endswith((".jsonl", ".json", ".ndjson")):
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise MonitorError(f"--labels {path}: not JSON lines ({exc})") from None
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text)))


# --- the comparison ----------------------------------------------------------------------------------


def live_metrics(
    labels: Sequence[Any], scores: Sequence[Any], predictions: Sequence[Any], names: Sequence[str], positive: Any,
) -> dict[str, float | None]:
    """Each named metric on the labelled rows (None where it cannot be computed)."""
    import numpy as np

    if positive is None:  # a regressor or a multiclass model: labels and predictions as they are
        y = np.array([str(label) for label in labels])
        predicted = np.array([str(p) for p in predictions])
    else:
        y, predicted = is_positive(labels, positive), is_positive(predictions, positive)
    values = np.array([np.nan if s is None else float(s) for s in scores])
    results: dict[str, float | None] = {}
    for name in names:
        spec = METRICS.get(name)
        if spec is None or not len(y):
            results[name] = None
            continue
        uses, _, function = spec
        try:
            if uses == "scores":
                regression = positive is None
                target = np.array([float(label) for label in labels]) if regression else y
                value = function(target, values)
            else:
                value = function(y, predicted)
        except (ValueError, TypeError):  # one class only, NaN scores…: not computable
            value = None
        results[name] = None if value is None or value != value else round(float(value), 6)
    return results


def is_positive(values: Sequence[Any], positive: Any) -> Any:
    """Which labels (from CSV text, JSON or the capture) name the positive class: 1, "1", 1.0 alike."""
    import numpy as np

    text, number = str(positive), _number(positive)
    return np.array([str(v) == text or (_number(v) == number) for v in values], dtype=bool)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def compare(
    live: Mapping[str, float | None], recorded: Mapping[str, Any], tolerance: float, labelled: int, min_labels: int,
) -> dict[str, dict[str, Any]]:
    """Per metric: live value, recorded value, change, and whether it dropped beyond tolerance."""
    out = {}
    for name, value in live.items():
        before = recorded.get(name)
        entry: dict[str, Any] = {"live": value, "recorded": before}
        if value is None:
            entry["note"] = "not computed" if name in METRICS else "no live computation for this metric name"
            entry["dropped"] = False
        elif isinstance(before, (int, float)):
            higher = METRICS[name][1]
            change = value - before
            entry["change"] = round(change, 6)
            worse_by = -change if higher else change
            entry["dropped"] = bool(worse_by > tolerance and labelled >= min_labels)
        else:
            entry["dropped"] = False
        out[name] = entry
    return out
