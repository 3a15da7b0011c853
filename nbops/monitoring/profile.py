"""The reference profile: what a model was trained on, kept small enough to ship in its package.

`build_profile(frame, scores=…)` summarises a training frame (`nbops.save_model(…, reference=X_train)`
calls it inside the kernel); `nbops monitor` compares current data with it. There is no raw
training frame at monitoring time, so the profile keeps exactly what the drift tests need
(see nbops/monitoring/drift.py for how each test is computed from it):

per numeric column
    rows, nulls, null_share, mean, std (population, as numpy/Evidently), min, max;
    `edges`: the reference's quantiles at 0, 1/100, …, 1 (method "lower": actual data values,
    de-duplicated), `counts` and `sums` of the values in each bin [e_i, e_i+1) (the last bin
    closed) — counts make PSI and histograms exact, sums make the Wasserstein distance exact
    within each bin;
    `values`: {value: count} when the column holds few distinct values (≤ DISCRETE_LIMIT).
per categorical column
    rows, nulls, null_share, `categories` {value: count} (the CATEGORY_LIMIT most frequent) and
    `other`, the count of rows in the rest.
scores
    the same numeric summary of the model's score on the reference (the probability of the
    positive class for a binary classifier, the prediction of a regressor) and, for a
    classifier, the predicted classes' counts.
sample
    up to SAMPLE_ROWS reference rows drawn without replacement with a fixed seed, columnwise,
    with their scores. A reference of at most SAMPLE_ROWS rows is kept whole, so the tests
    Evidently runs on small references (KS, chi-square) see every reference value.
calibration (optional: `save_model(…, calibration=(y_val, scores_val))`)
    how often the positive class occurred at each score on labelled rows the model was not
    trained on: the isotonic map, a reliability table and whether it holds (calibration.py);
    what estimating performance before labels needs (estimate.py).

The file is deterministic: the same frame gives the same bytes (DVC outs do not churn).
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

PROFILE_VERSION = 1
#: Rows of the reference kept raw; references this small are kept whole (exact KS / chi-square).
SAMPLE_ROWS = 1000
#: Quantile bins of a numeric column (percentiles).
FINE_BINS = 100
#: Numeric columns with at most this many distinct values also keep their value counts.
DISCRETE_LIMIT = 20
#: Categories kept per categorical column; rarer ones are counted together as `other`.
CATEGORY_LIMIT = 200
SAMPLE_SEED = 0
HOLDS = ("quantile bins", "categories", "scores", "sample")


def is_numeric_dtype(dtype: Any) -> bool:
    """Numbers (ints, floats) are numeric; bools, strings and categories are categorical."""
    return getattr(dtype, "kind", "O") in "iuf"


def numeric_summary(values: Any) -> dict[str, Any]:
    """The numeric part of a column profile from its values (NaN = null)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    present = x[np.isfinite(x)]  # ±inf count as nulls, as Evidently drops them
    rows, nulls = int(x.size), int(x.size - present.size)
    entry: dict[str, Any] = {"rows": rows, "nulls": nulls, "null_share": _round(nulls / rows) if rows else 0.0}
    if present.size == 0:
        entry.update({"mean": None, "std": None, "min": None, "max": None, "edges": [], "counts": [], "sums": []})
        return entry
    present = np.sort(present)
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, FINE_BINS + 1), method="lower"))
    counts, sums = bin_counts(present, edges)
    entry.update({
        "mean": _float(present.mean()), "std": _float(present.std()),
        "min": _float(present[0]), "max": _float(present[-1]),
        "edges": [_float(e) for e in edges], "counts": [int(c) for c in counts], "sums": [_float(s) for s in sums],
    })
    distinct, distinct_counts = np.unique(present, return_counts=True)
    if distinct.size <= DISCRETE_LIMIT:
        entry["values"] = {_key(v): int(c) for v, c in zip(distinct, distinct_counts)}
    return entry


def bin_counts(x: Any, edges: Any) -> tuple[Any, Any]:
    """Counts and sums of `x` (no NaN) in the bins [e_i, e_i+1), the last closed; values
    outside [e_0, e_-1] are not counted."""
    import numpy as np

    nbins = max(len(edges) - 1, 1)
    index = np.searchsorted(edges, x, side="right") - 1
    index[(x == edges[-1])] = nbins - 1
    inside = (index >= 0) & (index < nbins)
    counts = np.bincount(index[inside], minlength=nbins)
    sums = np.bincount(index[inside], weights=x[inside], minlength=nbins)
    return counts, sums


def categorical_summary(values: Sequence[Any]) -> dict[str, Any]:
    """The categorical part of a column profile: category counts (None = null)."""
    counts: dict[str, int] = {}
    nulls = 0
    for value in values:
        key = category_key(value)
        if key is None:
            nulls += 1
        else:
            counts[key] = counts.get(key, 0) + 1
    rows = len(values)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = dict(ordered[:CATEGORY_LIMIT])
    return {
        "rows": rows, "nulls": nulls, "null_share": _round(nulls / rows) if rows else 0.0,
        "categories": kept, "other": sum(c for _, c in ordered[CATEGORY_LIMIT:]),
    }


def category_key(value: Any) -> str | None:
    """A category as the profile and the monitor spell it: str(value); None/NaN are nulls."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    return value if isinstance(value, str) else str(value)


def build_profile(
    frame: Any,
    *,
    scores: Any = None,
    score_of: str = "",
    predictions: Any = None,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = SAMPLE_SEED,
) -> dict[str, Any]:
    """The profile of a reference DataFrame (and the model's scores and predictions on it)."""
    import numpy as np
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(np.asarray(frame))
        frame.columns = [str(c) for c in frame.columns]
    rows = len(frame)
    columns = []
    for name, series in frame.items():
        if is_numeric_dtype(series.dtype):
            entry = {"name": str(name), "kind": "numeric", "dtype": str(series.dtype), **numeric_summary(series.to_numpy(dtype=float, na_value=np.nan))}
        else:
            entry = {"name": str(name), "kind": "categorical", "dtype": "str", **categorical_summary(series.tolist())}
        columns.append(entry)
    profile: dict[str, Any] = {"v": PROFILE_VERSION, "rows": rows, "columns": columns}
    score_array = None
    if scores is not None:
        score_array = np.asarray(scores, dtype=float)
        profile["scores"] = {"name": "score", "kind": "numeric", "of": score_of, **numeric_summary(score_array)}
    if predictions is not None:
        profile["predictions"] = {"name": "prediction", "kind": "categorical", **categorical_summary(list(np.asarray(predictions).tolist()))}
    keep = sample_indices(rows, sample_rows, seed)
    sample: dict[str, Any] = {"rows": int(len(keep)), "seed": seed, "columns": {}}
    for entry, (_, series) in zip(columns, frame.items()):
        values = series.iloc[keep]
        if entry["kind"] == "numeric":
            sample["columns"][entry["name"]] = [None if v != v else _float(v) for v in values.to_numpy(dtype=float, na_value=np.nan)]
        else:
            sample["columns"][entry["name"]] = [category_key(v) for v in values.tolist()]
    if score_array is not None:
        sample["scores"] = [_float(v) for v in score_array[keep]]
    profile["sample"] = sample
    return profile


def sample_indices(rows: int, limit: int, seed: int) -> Any:
    """Sorted row positions of the sample: all rows when there are at most `limit`."""
    import numpy as np

    if rows <= limit:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=limit, replace=False))


def describe(profile: Mapping[str, Any]) -> dict[str, Any]:
    """What a manifest says about a profile: its columns, rows and what it holds."""
    holds = ["quantile bins", "categories"]
    if profile.get("scores"):
        holds.append("scores")
    if (profile.get("sample") or {}).get("rows"):
        holds.append("sample")
    described: dict[str, Any] = {}
    if profile.get("calibration"):
        from .calibration import describe as describe_calibration

        holds.append("calibration")
        described["calibration"] = describe_calibration(profile["calibration"])
    return {
        "columns": [c["name"] for c in profile.get("columns", [])],
        "rows": profile.get("rows"),
        "holds": holds,
        **described,
    }


def dumps(profile: Mapping[str, Any]) -> str:
    """The profile as compact, diff-friendly JSON: one line per column and per sample column."""
    def compact(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    lines = ["{"]
    items = list(profile.items())
    for i, (key, value) in enumerate(items):
        end = "," if i < len(items) - 1 else ""
        if key == "columns":
            inner = ",\n".join(f"    {compact(c)}" for c in value)
            lines.append(f'  "columns": [\n{inner}\n  ]{end}')
        elif key == "sample":
            parts = [f'    {compact(k)}: {compact(v)}' for k, v in value.items() if k != "columns"]
            cols = ",\n".join(f"      {compact(k)}: {compact(v)}" for k, v in value["columns"].items())
            parts.append(f'    "columns": {{\n{cols}\n    }}')
            lines.append('  "sample": {\n' + ",\n".join(parts) + f"\n  }}{end}")
        elif key == "calibration":
            parts = [f"    {compact(k)}: {compact(v)}" for k, v in value.items()]
            lines.append('  "calibration": {\n' + ",\n".join(parts) + f"\n  }}{end}")
        else:
            lines.append(f"  {compact(key)}: {compact(value)}{end}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def validate(profile: Any, where: str) -> dict[str, Any]:
    """The profile if it is one this version of nbops reads, else ValueError naming `where`."""
    if not isinstance(profile, dict) or not isinstance(profile.get("columns"), list):
        raise ValueError(f"{where}: not an nbops reference profile (no 'columns')")
    if profile.get("v") != PROFILE_VERSION:
        raise ValueError(f"{where}: profile version {profile.get('v')!r}; this nbops reads version {PROFILE_VERSION}")
    for column in profile["columns"]:
        if column.get("kind") not in ("numeric", "categorical") or not isinstance(column.get("name"), str):
            raise ValueError(f"{where}: column entry {str(column)[:80]} lacks a name or a kind")
    if profile.get("calibration") is not None:
        from .calibration import validate as validate_calibration

        validate_calibration(profile["calibration"], where)
    return profile


def _float(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _round(value: float) -> float:
    return round(value, 6)


def _key(value: Any) -> str:
    """A numeric value as a JSON object key: integers without a trailing .0."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)
