# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Featurize: what was known about each transaction when it happened
#
# The handbook's features (`fraudkit/features.py`), computed for every transaction at once:
# weekend and night flags; per customer, the number of transactions and their mean amount over
# the last 1, 7 and 30 days; per terminal, the number of transactions and the share that were
# fraud over 1, 7 and 30 days **before a `delay_days` feedback delay** — fraud is confirmed about
# a week after it happens, so younger labels are never used (a test proves that no feature
# changes when the future, or a label younger than the delay, changes).
#
# Then the time-ordered split: the last `test_weeks` are the test set (the most recent weeks,
# on which champion and challenger are compared), `delay_days` before them are left out (their
# labels would not be known yet when the model is trained), and the `train_weeks` before that
# are the training set. Earlier days only serve as history for the windows. A window with no
# transactions stops the pipeline here, with one line, before anything trains on it.
#
# `all.parquet` holds every transaction with its features: the evaluate stage runs the handbook's
# own protocol (prequential folds of one week) on it, beside this split.

# %% tags=["parameters"]
windows = [1, 7, 30]
delay_days = 7
train_weeks = 5
test_weeks = 4

# %%
from pathlib import Path

import pandas as pd

import nbops
from fraudkit import features

OUTPUT = Path("data/features")

# %%
transactions = pd.read_parquet("data/validated/transactions.parquet")
featured = features.add_features(transactions, windows=windows, delay_days=delay_days)
names = features.feature_names(windows)
featured[names].describe().T.round(3)

# %%
last_day = int(featured["tx_time_days"].max())
test_start = last_day + 1 - 7 * test_weeks
train_end = test_start - delay_days
train_start = train_end - 7 * train_weeks
if train_start < 0:
    raise ValueError(
        f"params.yaml featurize: {train_weeks} train weeks + {delay_days} delay days + {test_weeks} test weeks "
        f"need {7 * (train_weeks + test_weeks) + delay_days} days; the data has {last_day + 1}"
    )
days = featured["tx_time_days"]
train = featured[(days >= train_start) & (days < train_end)]
test = featured[days >= test_start]
for name, part, first_day, end_day in (("training", train, train_start, train_end), ("test", test, test_start, last_day + 1)):
    if part.empty:  # the first stage that can tell: stop here, before train or evaluate starts
        raise ValueError(
            f"data/validated/transactions.parquet: no transactions in the {name} window, days {first_day}–{end_day - 1} "
            f"(the batch's transactions fall on {days.nunique()} days between day {int(days.min())} and day {last_day}); "
            "check the batch's dates, or params.yaml featurize"
        )
OUTPUT.mkdir(parents=True, exist_ok=True)
train.to_parquet(OUTPUT / "train.parquet", index=False)
test.to_parquet(OUTPUT / "test.parquet", index=False)
# every transaction with its features, for the handbook's prequential folds in evaluate
featured.to_parquet(OUTPUT / "all.parquet", index=False)

nbops.log_metric({
    "train_first_day": train_start, "train_days": 7 * train_weeks, "test_first_day": test_start,
    "train_rows": len(train), "train_frauds": int(train["tx_fraud"].sum()),
    "test_rows": len(test), "test_frauds": int(test["tx_fraud"].sum()),
    "history_days_before_train": train_start,
})
print(f"train: days {train_start}–{train_end - 1}, {len(train)} rows; test: days {test_start}–{last_day}, {len(test)} rows")
