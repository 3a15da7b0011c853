"""What "the same answers" means when they were computed somewhere else: in another process, by
another install, on another CPU.

A model's floats are sums, and the order of a sum is not part of a model: a BLAS picks its
kernels by CPU (OpenBLAS) and splits a sum among its threads, a forest with `n_jobs` > 1 adds
its trees as they finish, one row and a batch go through different kernels (gemv and gemm). Each
order gives other last bits. So answers recorded elsewhere (a manifest's sample, written in the
notebook's kernel) are compared here with a tolerance:

    floats      equal within RTOL relative and ATOL absolute: a few thousand ulps, far above
                what another order of the same sum changes, far below what another computation
                (float32 instead of float64, a missing step, other data) changes
    labels      equal, but for a row whose recorded class probabilities tie within that
                tolerance: another order may break the tie either way
    decisions   equal, but for a row whose recorded probability is the threshold within it

Exact comparison is for one computation done twice in one process on the same inputs: the
warm-up's proof that each shortcut gives the model's own bits (model.py, shortcuts.py).
"""

from __future__ import annotations

from typing import Any, Sequence

#: The relative and absolute tolerance of an answer computed elsewhere (see above).
RTOL = 1e-9
ATOL = 1e-12


def near(a: Any, b: Any) -> Any:
    """Element-wise: `a` equals `b` up to the order of a sum (NaN equals NaN)."""
    import numpy as np

    return np.isclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=RTOL, atol=ATOL, equal_nan=True)


def same_floats(actual: Any, expected: Any) -> bool:
    """Whether two arrays of floats are the same answers (same shape, each value `near`)."""
    import numpy as np

    try:
        a, b = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return a.shape == b.shape and bool(near(a, b).all())


def differing_labels(actual: Sequence[Any], expected: Sequence[Any], probabilities: Any = None) -> list[int]:
    """The rows whose labels differ, less those whose recorded `probabilities` (one row per
    label, a column per class) tie within the tolerance between their two likeliest classes."""
    import numpy as np

    rows = _unequal(actual, expected)
    recorded = np.asarray(probabilities if probabilities is not None else [], dtype=np.float64)
    if not rows or recorded.ndim != 2 or recorded.shape[0] != len(expected) or recorded.shape[1] < 2:
        return rows
    top = np.sort(recorded[rows], axis=1)[:, -2:]
    return [row for row, tie in zip(rows, near(top[:, 0], top[:, 1]).tolist()) if not tie]


def differing_decisions(actual: Sequence[Any], expected: Sequence[Any], scores: Any, threshold: float) -> list[int]:
    """The rows whose decisions differ, less those whose recorded score (the positive class's
    probability) is the threshold within the tolerance."""
    import numpy as np

    rows = _unequal(actual, expected)
    if not rows or scores is None or len(scores) != len(expected):
        return rows
    on_threshold = near(np.asarray(scores, dtype=np.float64)[rows], np.full(len(rows), float(threshold)))
    return [row for row, close in zip(rows, on_threshold.tolist()) if not close]


def _unequal(actual: Sequence[Any], expected: Sequence[Any]) -> list[int]:
    """The rows that differ (every row when the lengths differ)."""
    actual, expected = list(actual), list(expected)
    if len(actual) != len(expected):
        return list(range(max(len(actual), len(expected))))
    return [i for i, (a, e) in enumerate(zip(actual, expected)) if a != e]


def differences(predictions: Any, expected: dict[str, Any], probabilities: Any = None,
                decisions: Any = None, decision: Any = None) -> list[str]:
    """What differs between these answers and those a manifest recorded for its sample
    (`sample_predictions`, `sample_probabilities`, `sample_decisions`), one line each; none when
    they are the same answers. `decision` is the package's `Decision` (its threshold and the
    positive class's column) when `decisions` are given."""
    import numpy as np

    recorded = expected.get("sample_predictions")
    recorded_probabilities = expected.get("sample_probabilities")
    failures = []
    if predictions is not None and recorded is not None:
        failures += _prediction_failures(np.asarray(predictions), recorded, recorded_probabilities)
    if probabilities is not None and recorded_probabilities is not None and not same_floats(probabilities, recorded_probabilities):
        failures.append(f"probabilities differ from the recorded ones beyond rtol {RTOL:g}")
    if decisions is not None and decision is not None:
        recorded_decisions = expected.get("sample_decisions") or []
        scores = np.asarray(recorded_probabilities, dtype=np.float64)[:, decision.index] if recorded_probabilities is not None else None
        off = differing_decisions(list(decisions), recorded_decisions, scores, decision.threshold)
        if off:
            failures.append(f"decisions at threshold {decision.threshold} differ from the recorded ones on {len(off)} of "
                            f"{len(recorded_decisions)} sample rows (rows {_rows(off)})")
    return failures


def _prediction_failures(values: Any, recorded: list[Any], recorded_probabilities: Any) -> list[str]:
    import numpy as np

    if values.dtype.kind == "f" and np.asarray(recorded).dtype.kind in "fiu":  # a regressor's values
        if same_floats(values, recorded):
            return []
        off = int((~near(values, recorded)).sum()) if values.shape == np.asarray(recorded).shape else len(recorded)
        return [f"predictions differ from the recorded ones beyond rtol {RTOL:g} on {off} of {len(recorded)} sample rows"]
    off = differing_labels(values.tolist(), recorded, recorded_probabilities)
    if not off:
        return []
    return [f"predictions differ from the recorded ones on {len(off)} of {len(recorded)} sample rows (rows {_rows(off)})"]


def _rows(rows: list[int]) -> str:
    return ", ".join(map(str, rows[:5])) + (" …" if len(rows) > 5 else "")
