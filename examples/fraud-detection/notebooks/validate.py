# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Validate: the automated checks on a batch of transactions
#
# Before anything trains on a batch, its schema and ranges are checked with pandera
# (`fraudkit/checks.py`): nulls, duplicate transaction ids, negative or absurd amounts,
# timestamps before the batch, in the future (after it was taken in) or out of order, customers and
# terminals that do not exist, labels and scenarios outside their values, columns of the wrong
# type or unexpected ones — and fields that contradict each other: time fields that disagree,
# a label that disagrees with its fraud scenario.
#
# `nbops.log_checks` records the outcome — metrics, a plot of failing rows per check, and the
# offending rows in this report, which `nbops report` shows — and when a check fails it stops the
# stage: `dvc repro` stops, and nothing downstream runs on the bad batch. Only a batch that
# passes is written to `data/validated/`, where the next stage reads it.

# %% tags=["parameters"]
max_amount = 10000.0

# %%
import json
from pathlib import Path

import pandas as pd

import nbops
from fraudkit import checks

RAW = Path("data/raw")
OUTPUT = Path("data/validated/transactions.parquet")

# %% [markdown]
# "In the future" means after the moment the generate stage took the batch in
# (`data/raw/intake.json`), never after a date the batch declares about itself: a batch that says
# it ends in 2032 cannot make a 2031 timestamp plausible.

# %%
transactions = pd.read_parquet(RAW / "transactions.parquet")
batch_info = json.loads((RAW / "batch.json").read_text(encoding="utf-8"))
intake = json.loads((RAW / "intake.json").read_text(encoding="utf-8"))
batch = checks.Batch(
    start=pd.Timestamp(batch_info["start"]),
    taken_in=pd.Timestamp(intake["taken_in"]),
    customer_ids=set(pd.read_parquet(RAW / "customers.parquet", columns=["customer_id"])["customer_id"]),
    terminal_ids=set(pd.read_parquet(RAW / "terminals.parquet", columns=["terminal_id"])["terminal_id"]),
    max_amount=max_amount,
)
findings = checks.findings(transactions, batch)
findings if findings is not None else "every check passed"

# %%
nbops.log_checks(findings, rows=len(transactions), checks=checks.CHECK_NAMES, source=RAW / "transactions.parquet")

# %%
OUTPUT.parent.mkdir(parents=True, exist_ok=True)
transactions.to_parquet(OUTPUT, index=False)
print(f"{len(transactions)} transactions passed every check → {OUTPUT}")
