"""The fraud example's data checks: each kind of bad row is found and named (check, column, row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pandera")
pytest.importorskip("scipy")
from fraudkit import checks, simulate  # noqa: E402


@pytest.fixture(scope="module")
def clean():
    world = simulate.WORLDS["small"]
    sim = simulate.simulate(world, seed=2)
    start = pd.Timestamp(world.start_date)
    batch = checks.Batch(start, start + pd.Timedelta(days=world.n_days),
                         set(sim.customers["customer_id"]), set(sim.terminals["terminal_id"]), max_amount=10_000)
    return sim.transactions.head(3000).copy(), batch


def test_a_clean_batch_passes(clean):
    tx, batch = clean
    assert checks.findings(tx, batch) is None


def _set(tx, row, column, value):
    bad = tx.copy()
    if column == "tx_amount" and value is None:
        bad[column] = bad[column].astype("float64")
    bad.loc[row, column] = value
    return bad


CASES = [
    ("negative amount", lambda tx: _set(tx, 17, "tx_amount", -12.5), "amount_not_negative", "tx_amount", [17]),
    ("absurd amount", lambda tx: _set(tx, 18, "tx_amount", 2.5e6), "amount_not_absurd", "tx_amount", [18]),
    ("null amount", lambda tx: _set(tx, 19, "tx_amount", None), "not_nullable", "tx_amount", [19]),
    ("future timestamp", lambda tx: _set(tx, 2999, "tx_datetime", pd.Timestamp("2031-01-01")), "not_in_future", "tx_datetime", [2999]),
    ("before the batch", lambda tx: _set(tx, 0, "tx_datetime", pd.Timestamp("2017-01-01")), "not_before_batch_start", "tx_datetime", [0]),
    ("out of order", lambda tx: _set(tx, 500, "tx_datetime", tx.loc[100, "tx_datetime"]), "in_time_order", "tx_datetime", [500]),
    ("unknown customer", lambda tx: _set(tx, 21, "customer_id", 123_456), "known_customer", "customer_id", [21]),
    ("unknown terminal", lambda tx: _set(tx, 22, "terminal_id", 99_999), "known_terminal", "terminal_id", [22]),
    ("duplicate id", lambda tx: _set(tx, 24, "transaction_id", 23), "field_uniqueness", "transaction_id", [23, 24]),
    ("bad label", lambda tx: _set(tx, 25, "tx_fraud", 2), "label_is_0_or_1", "tx_fraud", [25]),
    ("unknown scenario", lambda tx: _set(tx, 26, "tx_fraud_scenario", 9), "known_scenario", "tx_fraud_scenario", [26]),
]


@pytest.mark.parametrize("label, corrupt, check, column, rows", CASES, ids=[c[0] for c in CASES])
def test_each_kind_of_bad_row_is_named(clean, label, corrupt, check, column, rows):
    tx, batch = clean
    found = checks.findings(corrupt(tx), batch)
    assert found is not None, label
    hit = found[(found["check"] == check) & (found["column"] == column)]
    assert sorted(hit["index"].tolist()) == rows
    assert check in checks.CHECK_NAMES


def test_columns_of_the_wrong_type_or_unexpected_ones_are_findings(clean):
    tx, batch = clean
    found = checks.findings(tx.assign(customer_id=tx["customer_id"].astype(str), extra=1), batch)
    assert {("dtype", "customer_id")} <= set(zip(found["check"], found["column"]))
    assert "column_in_schema" in set(found["check"])
    missing = checks.findings(tx.drop(columns=["terminal_id"]), batch)
    assert "column_in_dataframe" in set(missing["check"])


def test_every_offending_row_is_found_at_full_batch_size(clean):
    tx, batch = clean
    bad = tx.copy()
    rows = np.arange(10, 3000, 97)
    bad.loc[rows, "tx_amount"] = -1.0
    found = checks.findings(bad, batch)
    assert sorted(found.loc[found["check"] == "amount_not_negative", "index"]) == rows.tolist()
