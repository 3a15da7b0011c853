"""The data checks a batch of transactions must pass before anything trains on it (pandera).

Why pandera: it is well kept (regular releases), its schemas are plain Python beside the code,
its checks run vectorised on pandas, and its lazy validation collects every failure in one table
(check, column, row index, offending value) — exactly what the validate stage's report needs. Great
Expectations brings a framework of contexts, stores and many dependencies for the same result;
frictionless validates row by row in Python, too slow for 1.75 M rows.

Beside each column's own checks, some checks cross fields and one holds the batch against the
clock:

* the time fields agree: `tx_time_seconds` counts seconds from the batch's start, so
  `tx_datetime` is the start plus those seconds, and `tx_time_days` is their whole days;
* the label agrees with the scenario: a fraud (`tx_fraud` 1) has a scenario, a genuine
  transaction has none (scenario 0);
* nothing is in the future: no transaction after the moment the batch was taken in, which the
  generate stage records (`data/raw/intake.json`) — not a date the batch declares about itself.

Every finding names its check, its column and a row of the file (its position, from 0) with the
offending value; a column of the wrong type names the rows whose values are not of the expected
kind (all rows when every value is of another type), and a missing or unexpected column every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import pandera.pandas as pa

COLUMNS = (
    "transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount",
    "tx_time_seconds", "tx_time_days", "tx_fraud", "tx_fraud_scenario",
)
SECONDS_PER_DAY = 86_400
DTYPES = {
    "transaction_id": "int64", "tx_datetime": "datetime64[us]", "customer_id": "int64", "terminal_id": "int64",
    "tx_amount": "float64", "tx_time_seconds": "int64", "tx_time_days": "int64", "tx_fraud": "int64",
    "tx_fraud_scenario": "int64",
}


@dataclass(frozen=True)
class Batch:
    """What the checks know about a batch: its period, when it was taken in, the ids it may refer to."""

    start: pd.Timestamp  # the first instant the batch covers; tx_time_seconds counts from it
    taken_in: pd.Timestamp  # when the pipeline took the batch in (intake.json): nothing may happen after it
    customer_ids: frozenset[int] | Iterable[int]
    terminal_ids: frozenset[int] | Iterable[int]
    max_amount: float = 10_000.0


#: The checks that cross fields, each reported on the column it names.
CROSS_FIELD = {
    "seconds_agree_with_datetime": "tx_time_seconds",
    "days_agree_with_seconds": "tx_time_days",
    "label_agrees_with_scenario": "tx_fraud",
}


def _agreeing(check):
    """A cross-field check that leaves a row it cannot compute (a wrong type, a null) to the
    column's own checks instead of failing on it."""
    def run(frame: pd.DataFrame) -> pd.Series:
        try:
            with np.errstate(all="ignore"):
                return check(frame).fillna(True).astype(bool)
        except (TypeError, ValueError, OverflowError):
            return pd.Series(True, index=frame.index)
    return run


def schema(batch: Batch) -> pa.DataFrameSchema:
    """Every check, each named so the report says which one failed."""
    customers = pd.Index(sorted(batch.customer_ids))
    terminals = pd.Index(sorted(batch.terminal_ids))
    start = pd.Timestamp(batch.start)
    return pa.DataFrameSchema(
        {
            "transaction_id": pa.Column(DTYPES["transaction_id"], pa.Check(lambda s: s >= 0, name="id_not_negative"),
                                        unique=True, report_duplicates="all"),
            "tx_datetime": pa.Column(
                DTYPES["tx_datetime"],
                [
                    pa.Check(lambda s: s >= batch.start, name="not_before_batch_start"),
                    pa.Check(lambda s: s <= batch.taken_in, name="not_in_future"),
                    # each row no earlier than the one before it: the file is in time order
                    pa.Check(lambda s: s.diff().fillna(pd.Timedelta(0)) >= pd.Timedelta(0), name="in_time_order"),
                ],
            ),
            "customer_id": pa.Column(DTYPES["customer_id"], pa.Check(lambda s: s.isin(customers), name="known_customer")),
            "terminal_id": pa.Column(DTYPES["terminal_id"], pa.Check(lambda s: s.isin(terminals), name="known_terminal")),
            "tx_amount": pa.Column(
                DTYPES["tx_amount"],
                [
                    pa.Check(lambda s: s >= 0, name="amount_not_negative"),
                    pa.Check(lambda s: s <= batch.max_amount, name="amount_not_absurd"),
                ],
            ),
            "tx_time_seconds": pa.Column(DTYPES["tx_time_seconds"], pa.Check(lambda s: s >= 0, name="seconds_not_negative")),
            "tx_time_days": pa.Column(DTYPES["tx_time_days"], pa.Check(lambda s: s >= 0, name="days_not_negative")),
            "tx_fraud": pa.Column(DTYPES["tx_fraud"], pa.Check(lambda s: s.isin([0, 1]), name="label_is_0_or_1")),
            "tx_fraud_scenario": pa.Column(DTYPES["tx_fraud_scenario"], pa.Check(lambda s: s.isin([0, 1, 2, 3, 4]), name="known_scenario")),
        },
        checks=[
            pa.Check(_agreeing(lambda f: f["tx_datetime"] == start + pd.to_timedelta(f["tx_time_seconds"], unit="s")),
                     name="seconds_agree_with_datetime"),
            pa.Check(_agreeing(lambda f: f["tx_time_days"] == f["tx_time_seconds"] // SECONDS_PER_DAY), name="days_agree_with_seconds"),
            pa.Check(_agreeing(lambda f: (f["tx_fraud"] == 1) == (f["tx_fraud_scenario"] > 0)), name="label_agrees_with_scenario"),
        ],
        strict=True,  # no column beside these
        ordered=False,
        coerce=False,  # a column of the wrong type is a finding, not something to repair silently
    )


CHECK_NAMES = (
    "field_uniqueness", "not_nullable", "dtype", "id_not_negative", "not_before_batch_start", "not_in_future",
    "in_time_order", "known_customer", "known_terminal", "amount_not_negative", "amount_not_absurd",
    "seconds_not_negative", "days_not_negative", "label_is_0_or_1", "known_scenario", *CROSS_FIELD,
)


def findings(transactions: pd.DataFrame, batch: Batch) -> pd.DataFrame | None:
    """Every failing value (check, column, index, failure_case: pandera's failure cases, each
    naming a row), or None."""
    try:
        schema(batch).validate(transactions, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.copy()
        cases["check"] = cases["check"].astype(str)
        # a cross-field check is reported by pandera on every column it reads: keep the one it names
        named = cases["check"].map(CROSS_FIELD)
        cases = cases[named.isna() | (cases["column"] == named)].copy()
        crossing = cases["check"].isin(list(CROSS_FIELD))
        if crossing.any():  # the value shown says what it contradicts
            cases.loc[crossing, "failure_case"] = [
                _contradiction(check, transactions.loc[row], batch) for check, row in zip(cases.loc[crossing, "check"], cases.loc[crossing, "index"])
            ]
        cases = _column_rows(_typed_rows(cases, transactions), transactions)
        return cases[["check", "column", "index", "failure_case"]].reset_index(drop=True)
    return None


def _contradiction(check: str, row: pd.Series, batch: Batch) -> str:
    """A cross-field finding's value: the field and what it contradicts."""
    if check == "seconds_agree_with_datetime":
        implied = pd.Timestamp(batch.start) + pd.to_timedelta(int(row["tx_time_seconds"]), unit="s")
        return f"{row['tx_time_seconds']} s from the batch start is {implied}, but tx_datetime is {row['tx_datetime']}"
    if check == "days_agree_with_seconds":
        return f"{row['tx_time_days']}, but tx_time_seconds {row['tx_time_seconds']} is day {int(row['tx_time_seconds']) // SECONDS_PER_DAY}"
    return f"{row['tx_fraud']} with tx_fraud_scenario {row['tx_fraud_scenario']}"


def _column_rows(cases: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """A missing or an unexpected column is one finding without a row or a column in pandera's
    table (the name is its failure case): it concerns every row, so name them."""
    whole = cases["check"].isin(["column_in_dataframe", "column_in_schema"]) & cases["index"].isna()
    if not whole.any():
        return cases
    parts = [cases[~whole]]
    for _, case in cases[whole].iterrows():
        column = str(case["failure_case"])
        if column in transactions.columns:  # unexpected: each row's value of it
            shown = transactions[column].astype(str).to_numpy()
        else:
            shown = np.full(len(transactions), "(no such column in the file)")
        parts.append(pd.DataFrame({"check": case["check"], "column": column, "index": transactions.index, "failure_case": shown}))
    return pd.concat(parts, ignore_index=True)


def _typed_rows(cases: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """A column of the wrong type is one finding without a row in pandera's table; name its rows
    instead: those whose value is not of the expected kind, or every row when none can tell."""
    wrong = cases["check"].str.match(r"^dtype\(.*\)$")
    if not wrong.any():
        return cases
    parts = [cases[~wrong]]
    for _, case in cases[wrong].iterrows():
        column = case["column"]
        values = transactions[column]
        rows = _rows_of_another_kind(values, DTYPES.get(column, ""))
        shown = [f"{value!r} ({values.dtype}, expected {DTYPES.get(column)})" for value in values.loc[rows]]
        parts.append(pd.DataFrame({"check": "dtype", "column": column, "index": rows, "failure_case": shown}))
    return pd.concat(parts, ignore_index=True)


def _rows_of_another_kind(values: pd.Series, expected: str) -> pd.Index:
    if expected.startswith("datetime"):
        parsed = pd.to_datetime(values, errors="coerce")
        bad = parsed.isna()
    else:
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna()
        if expected.startswith("int"):
            bad |= (numbers % 1 != 0).fillna(True)
    return values.index[bad] if bad.any() else values.index
