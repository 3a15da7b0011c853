"""The fraud example's transaction simulator follows the handbook's published rules (small scale;
the published full-scale figures are checked in tests/e2e/test_fraud_example.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("scipy")
from fraudkit import simulate  # noqa: E402

SMALL = simulate.WORLDS["small"]


@pytest.fixture(scope="module")
def sim():
    return simulate.simulate(SMALL, seed=0)


def test_small_scale_is_about_100k_transactions_under_one_percent_fraud(sim):
    counts = simulate.summary(sim.transactions)
    # 500 customers × 2 transactions a day on average × 105 days × 97% kept inside the day ≈ 102,000
    assert 90_000 <= counts["transactions"] <= 112_000
    # the handbook's 0.84%, at a tenth of its population and its daily compromises
    assert 0.006 <= counts["fraud_rate"] <= 0.011
    assert counts["scenario_1"] > 0 and counts["scenario_2"] > 0 and counts["scenario_3"] > 0
    assert counts["scenario_4"] == 0  # card testing only comes with a pattern shift


def test_customer_profiles_follow_the_rules(sim):
    c = sim.customers
    assert c["mean_amount"].between(5, 100).all() and np.allclose(c["std_amount"], c["mean_amount"] / 2)
    assert c["mean_tx_per_day"].between(0, 4).all()
    assert c[["x", "y"]].stack().between(0, SMALL.grid).all()
    # Poisson draws around each customer's mean, less the ~3% of times that fall outside the day
    tx = sim.transactions
    per_day = tx.groupby("customer_id").size().reindex(c["customer_id"], fill_value=0) / SMALL.n_days
    slope = float(np.polyfit(c["mean_tx_per_day"], per_day, 1)[0])
    assert 0.93 <= slope <= 1.0


def test_times_amounts_and_terminals_follow_the_rules(sim):
    tx = sim.transactions
    time_of_day = tx["tx_time_seconds"] % simulate.SECONDS_PER_DAY
    assert abs(time_of_day.mean() - 43_200) < 400
    assert 18_000 < time_of_day.std() < 19_200  # N(12 h, 20,000 s) cut to the day: sd ≈ 18,600 s
    genuine = tx[tx["tx_fraud_scenario"] != 3]
    assert (tx["tx_amount"] >= 0).all() and np.allclose(tx["tx_amount"], tx["tx_amount"].round(2))
    # a genuine amount is N(mean, mean/2): its mean per customer tracks the customer's mean
    mean_by_customer = genuine.groupby("customer_id")["tx_amount"].mean()
    expected = sim.customers.set_index("customer_id")["mean_amount"].loc[mean_by_customer.index]
    assert abs(float((mean_by_customer / expected).median()) - 1) < 0.05
    # every terminal used lies within the radius of its customer
    cx = sim.customers.set_index("customer_id").loc[tx["customer_id"], ["x", "y"]].to_numpy()
    tx_xy = sim.terminals.set_index("terminal_id").loc[tx["terminal_id"], ["x", "y"]].to_numpy()
    assert (np.hypot(*(cx - tx_xy).T) <= SMALL.radius).all()
    assert tx["tx_datetime"].is_monotonic_increasing and (tx["transaction_id"] == np.arange(len(tx))).all()


def test_fraud_scenarios_follow_the_rules(sim):
    tx = sim.transactions
    rules = simulate.FraudRules()
    # scenario 1: a large amount is fraud unless a later scenario relabelled it
    large = tx[tx["tx_amount"] > rules.amount_threshold]
    assert (large["tx_fraud"] == 1).all()
    assert (tx.loc[tx["tx_fraud_scenario"] == 1, "tx_amount"] > rules.amount_threshold).all()
    # scenario 2: while a terminal is compromised (up to 28 days), all its transactions are fraud
    s2 = tx[tx["tx_fraud_scenario"] == 2]
    spans = s2.groupby("terminal_id")["tx_time_seconds"].agg(["min", "max"])
    single = spans[spans["max"] - spans["min"] < rules.terminal_days * simulate.SECONDS_PER_DAY]
    assert len(single) >= 5
    for terminal, (first, last) in single.iterrows():
        at = tx[(tx["terminal_id"] == terminal) & tx["tx_time_seconds"].between(first, last)]
        assert (at["tx_fraud"] == 1).all()
    # scenario 3: a third of a compromised card's transactions, at five times a usual amount
    s3 = tx[tx["tx_fraud_scenario"] == 3]
    usual = sim.customers.set_index("customer_id")["mean_amount"].loc[s3["customer_id"]].to_numpy()
    assert 3.5 < float(np.median(s3["tx_amount"].to_numpy() / usual)) < 6.5
    assert (tx["tx_fraud"] == (tx["tx_fraud_scenario"] > 0)).all()


def test_same_seed_same_data_and_other_seed_other_data():
    a = simulate.simulate(SMALL, seed=3).transactions
    b = simulate.simulate(SMALL, seed=3).transactions
    pd.testing.assert_frame_equal(a, b)
    assert len(simulate.simulate(SMALL, seed=4).transactions) != len(a)


def test_a_pattern_shift_changes_the_rules_from_its_day_on():
    rules = simulate.FraudRules()
    shifted = rules.updated({"terminals_per_day": 8.0, "testing_cards_per_day": 30.0})
    tx = simulate.simulate(SMALL, rules, seed=0, shift_day=70, shifted=shifted).transactions
    testing = tx[tx["tx_fraud_scenario"] == 4]
    assert len(testing) > 50 and testing["tx_time_days"].min() >= 70
    assert testing["tx_amount"].max() <= shifted.testing_amount_max
    before = tx[tx["tx_time_days"].between(42, 69)]
    after = tx[tx["tx_time_days"] >= 77]
    assert (after["tx_fraud_scenario"] == 2).mean() > 2 * (before["tx_fraud_scenario"] == 2).mean()
    with pytest.raises(ValueError, match="unknown fraud rule"):
        rules.updated({"terminal_per_day": 1})
