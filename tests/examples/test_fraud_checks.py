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
    # checks that cross fields
    ("seconds a year later than the datetime", lambda tx: _shift_time(tx, 27, days=365),
     "seconds_agree_with_datetime", "tx_time_seconds", [27]),
    ("days that are not the seconds' days", lambda tx: _set(tx, 28, "tx_time_days", int(tx.loc[28, "tx_time_days"]) + 1),
     "days_agree_with_seconds", "tx_time_days", [28]),
    ("a genuine label with a fraud scenario", lambda tx: _set(tx, _genuine(tx), "tx_fraud_scenario", 2),
     "label_agrees_with_scenario", "tx_fraud", "genuine"),
]


def _shift_time(tx, row, days):
    bad = tx.copy()
    bad.loc[row, "tx_time_seconds"] += days * 86_400
    bad.loc[row, "tx_time_days"] += days
    return bad


def _genuine(tx):
    return int(tx.index[tx["tx_fraud"] == 0][40])


@pytest.mark.parametrize("label, corrupt, check, column, rows", CASES, ids=[c[0] for c in CASES])
def test_each_kind_of_bad_row_is_named(clean, label, corrupt, check, column, rows):
    tx, batch = clean
    found = checks.findings(corrupt(tx), batch)
    assert found is not None, label
    hit = found[(found["check"] == check) & (found["column"] == column)]
    assert sorted(hit["index"].tolist()) == (rows if rows != "genuine" else [_genuine(tx)])
    assert check in checks.CHECK_NAMES
    # a cross-field check is reported once, on the column it names
    assert set(found.loc[found["check"] == check, "column"]) == {column}


def test_in_the_future_means_after_the_intake_not_after_a_declared_end(clean):
    """The batch was taken in at `taken_in`; a timestamp after it is in the future whatever the
    batch says of itself (its batch.json is not read by the checks for this)."""
    tx, batch = clean
    taken_in = tx["tx_datetime"].max() + pd.Timedelta(hours=1)
    at_intake = checks.Batch(batch.start, taken_in, batch.customer_ids, batch.terminal_ids)
    assert checks.findings(tx, at_intake) is None
    late = _set(tx, 2999, "tx_datetime", taken_in + pd.Timedelta(minutes=1))
    found = checks.findings(late, at_intake)
    assert found.loc[found["check"] == "not_in_future", "index"].tolist() == [2999]


def test_every_finding_names_a_real_row(clean):
    """No finding without a row: a column of the wrong type names the rows whose values are not
    of its kind (all rows when none is), a missing or an unexpected column every row."""
    from nbops.pipeline.record import _findings_table

    tx, batch = clean
    one_word = tx.assign(customer_id=tx["customer_id"].astype(object))
    one_word.loc[12, "customer_id"] = "twelve"
    found = checks.findings(one_word, batch)
    wrong = found[found["check"] == "dtype"]
    assert wrong["index"].tolist() == [12] and wrong["failure_case"].tolist() == ["'twelve' (object, expected int64)"]
    as_text = checks.findings(tx.assign(tx_fraud=tx["tx_fraud"].astype(float)), batch)
    assert len(as_text[as_text["check"] == "dtype"]) == len(tx)  # every value is a float: every row
    missing = checks.findings(tx.drop(columns=["terminal_id"]), batch)
    assert set(missing["column"]) == {"terminal_id"} and missing["index"].tolist() == tx.index.tolist()
    for frame in (one_word, tx.assign(extra=1), tx.drop(columns=["terminal_id"])):
        table = _findings_table(checks.findings(frame, batch))
        assert table["row"].notna().all() and table["column"].notna().all() and (table["column"] != "None").all()


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
