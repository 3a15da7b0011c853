"""The fraud example's features: equal to a direct computation, and using no future information."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("scipy")
from fraudkit import features, simulate  # noqa: E402

DAY = simulate.SECONDS_PER_DAY


@pytest.fixture(scope="module")
def tx():
    return simulate.simulate(simulate.WORLDS["small"], seed=1).transactions


@pytest.fixture(scope="module")
def featured(tx):
    return features.add_features(tx)


def test_features_equal_a_direct_computation_row_by_row(tx, featured):
    rng = np.random.default_rng(0)
    for i in rng.choice(len(tx), 150, replace=False):
        row = tx.iloc[i]
        t = row["tx_time_seconds"]
        for w in (1, 7, 30):
            # the customer's transactions in (t − w days, t], this one included (ties: up to this row)
            mine = tx.iloc[: i + 1]
            mine = mine[(mine["customer_id"] == row["customer_id"]) & (mine["tx_time_seconds"] > t - w * DAY)]
            assert featured[f"customer_nb_tx_{w}d"].iloc[i] == len(mine)
            assert featured[f"customer_avg_amount_{w}d"].iloc[i] == pytest.approx(mine["tx_amount"].mean(), abs=1e-6)
            # the terminal's transactions in (t − 7 − w days, t − 7 days]: labels at least a week old
            seen = tx[(tx["terminal_id"] == row["terminal_id"]) & (tx["tx_time_seconds"] > t - (7 + w) * DAY)
                      & (tx["tx_time_seconds"] <= t - 7 * DAY)]
            assert featured[f"terminal_nb_tx_{w}d"].iloc[i] == len(seen)
            assert featured[f"terminal_risk_{w}d"].iloc[i] == pytest.approx(seen["tx_fraud"].mean() if len(seen) else 0.0)
    when = pd.DatetimeIndex(tx["tx_datetime"])
    assert (featured["tx_during_weekend"] == (when.day_of_week >= 5)).all()
    assert (featured["tx_during_night"] == (when.hour < 6)).all()
    assert set(features.feature_names()) <= set(featured.columns) and len(features.feature_names()) == 15


@pytest.mark.parametrize("cutoff_day", [20, 45, 80])
def test_no_feature_uses_the_future_or_labels_younger_than_the_delay(tx, featured, cutoff_day):
    """Cut the stream at a moment T: drop everything after it and scramble every label younger
    than the 7-day delay. If a feature of a transaction at or before T used anything later than
    it, or a label it could not have known, it would change. None does."""
    cutoff = cutoff_day * DAY + 12 * 3600
    known = tx[tx["tx_time_seconds"] <= cutoff].copy()
    young = known["tx_time_seconds"] > cutoff - 7 * DAY
    known.loc[young, "tx_fraud"] = np.random.default_rng(cutoff_day).integers(0, 2, int(young.sum()))
    assert young.sum() > 1000
    again = features.add_features(known)
    names = features.feature_names()
    pd.testing.assert_frame_equal(again[names].reset_index(drop=True), featured.loc[known.index, names].reset_index(drop=True))


def test_a_label_inside_the_delay_would_be_noticed(tx):
    """The test above can fail: with no delay, scrambling young labels changes the risk features."""
    cutoff = 45 * DAY
    known = tx[tx["tx_time_seconds"] <= cutoff].copy()
    base = features.add_features(known, delay_days=0)
    young = known["tx_time_seconds"] > cutoff - 7 * DAY
    known.loc[young, "tx_fraud"] = 1 - known.loc[young, "tx_fraud"]
    assert not base["terminal_risk_7d"].equals(features.add_features(known, delay_days=0)["terminal_risk_7d"])
