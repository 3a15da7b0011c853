"""runtime.parity: answers computed elsewhere are the same up to the order of float sums, and no
further; a label or decision may differ only where the recorded probabilities sit on a tie or
on the threshold."""

from __future__ import annotations

import numpy as np

from nbops.runtime.model import Decision
from nbops.runtime.parity import RTOL, differences, differing_decisions, differing_labels, same_floats

# one sum in two orders: what another BLAS kernel, thread count or batch size does
LEFT, RIGHT = (0.1 + 0.2) + 0.3, 0.1 + (0.2 + 0.3)


def test_another_order_of_a_sum_is_the_same_answer_another_computation_is_not():
    assert LEFT != RIGHT and same_floats([LEFT, 1.0], [RIGHT, 1.0])
    assert same_floats([np.nan], [np.nan])
    as_float32 = float(np.float32(RIGHT))  # a package that predicts in float32: a real difference
    assert abs(as_float32 - RIGHT) > 10 * RTOL * RIGHT and not same_floats([as_float32], [RIGHT])
    assert not same_floats([1.0, 2.0], [1.0])  # another shape


def test_a_label_may_differ_only_on_a_recorded_tie():
    recorded = [[0.5, 0.5 + 1e-15], [0.2, 0.8], [0.9, 0.1]]
    assert differing_labels([0, 1, 0], [1, 1, 0], recorded) == []  # row 0 is a tie: either label
    assert differing_labels([1, 0, 0], [1, 1, 0], recorded) == [1]
    assert differing_labels([1, 0, 0], [1, 1, 0]) == [1]  # no probabilities: every difference counts
    assert differing_labels([1], [1, 1], recorded) == [0, 1]


def test_a_decision_may_differ_only_on_a_score_at_the_threshold():
    threshold = 0.3
    scores = [LEFT / 2, 0.31, 0.29]  # LEFT / 2 is 0.3 in another order
    assert differing_decisions([0, 1, 0], [1, 1, 0], scores, threshold) == []
    assert differing_decisions([1, 0, 0], [1, 1, 0], scores, threshold) == [1]


def test_differences_name_what_differs_against_a_manifest():
    manifest = {
        "classes": [0, 1],
        "sample_predictions": [0, 1, 1],
        "sample_probabilities": [[0.7, 0.3], [RIGHT / 2, 1 - RIGHT / 2], [0.1, 0.9]],
        "sample_decisions": [0, 1, 1],
        "decision": {"threshold": 0.5},
    }
    decision = Decision(manifest["decision"], manifest["classes"], "manifest")
    moved = [[0.7, 0.3], [LEFT / 2, 1 - LEFT / 2], [0.1, 0.9]]
    assert differences([0, 1, 1], manifest, moved, [0, 1, 1], decision) == []
    failures = differences([0, 0, 1], manifest, [[0.7, 0.3], [0.7, 0.3], [0.1, 0.9]], [0, 0, 1], decision)
    assert failures == [
        "predictions differ from the recorded ones on 1 of 3 sample rows (rows 1)",
        f"probabilities differ from the recorded ones beyond rtol {RTOL:g}",
        "decisions at threshold 0.5 differ from the recorded ones on 1 of 3 sample rows (rows 1)",
    ]
    regression = {"sample_predictions": [RIGHT, 2.0]}
    assert differences(np.array([LEFT, 2.0]), regression) == []
    assert differences(np.array([RIGHT, 2.001]), regression) == [
        f"predictions differ from the recorded ones beyond rtol {RTOL:g} on 1 of 2 sample rows"]
