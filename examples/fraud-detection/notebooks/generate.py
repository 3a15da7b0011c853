# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Generate: a stream of card transactions with fraud
#
# Customers, terminals and their transactions, simulated from the rules published in Le Borgne
# et al., *Reproducible Machine Learning for Credit Card Fraud Detection – Practical Handbook*
# (see `fraudkit/simulate.py`): three fraud scenarios — large amounts, compromised terminals,
# compromised cards — at under 1% of the transactions.
#
# `scale: full` is the handbook's world (5,000 customers, 10,000 terminals, 183 days: about
# 1.75 M transactions); `small` keeps its densities at a tenth of the size over 15 weeks (about
# 100,000). From `shift_day` on, the fraud rules change by `shift` (e.g.
# `{terminals_per_day: 4, testing_cards_per_day: 6}`): the pattern shift a deployed model meets.
# With `source`, a folder holding a batch (`customers.parquet`, `terminals.parquet`,
# `transactions.parquet`, `batch.json`) is taken in instead, as real data would arrive; an empty
# batch stops here, the first stage that can tell.

# %% tags=["parameters"]
scale = "small"
seed = 0
shift_day = -1
shift = {}
source = ""

# %%
import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd

import nbops
from fraudkit import simulate

OUTPUT = Path("data/raw")
FILES = ("customers.parquet", "terminals.parquet", "transactions.parquet", "batch.json")


def read_batch_json(path):
    """batch.json as a dict, or one line naming the file and what is wrong with it."""
    try:
        batch = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                         "batch.json must be UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    missing = [key for key in ("start", "end") if not isinstance(batch, dict) or key not in batch]
    if missing:
        raise ValueError(f"{path}: lacks {', '.join(missing)} (the ISO dates of the batch's first and last instant)")
    return batch


# %% [markdown]
# **When the batch was taken in** is recorded here, by the stage that takes it in, in
# `data/raw/intake.json`: the validate stage judges "in the future" against it, never against a
# date the batch declares about itself. A batch from `source` is taken in now (UTC); the
# simulated world is "taken in" at the end of its last day, so that a simulated batch reproduces
# byte for byte.

# %%
if scale not in simulate.WORLDS:
    raise ValueError(f"params.yaml generate.scale is {scale!r}; choose one of {', '.join(simulate.WORLDS)}")
world = simulate.WORLDS[scale]
if source:
    missing = [name for name in FILES if not (Path(source) / name).exists()]
    if missing:
        raise FileNotFoundError(f"params.yaml generate.source: {source} lacks {', '.join(missing)}")
    batch = read_batch_json(Path(source) / "batch.json")
    transactions = pd.read_parquet(Path(source) / "transactions.parquet")
    if transactions.empty:
        raise ValueError(f"{Path(source) / 'transactions.parquet'}: no transactions (an empty batch); "
                         "nothing to validate or train on — deliver a batch with rows")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(Path(source) / name, OUTPUT / name)
    taken_in = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
else:
    rules = simulate.FraudRules()
    sim = simulate.simulate(world, rules, seed=seed, shift_day=shift_day, shifted=rules.updated(shift) if shift else None)
    transactions = sim.transactions
    OUTPUT.mkdir(parents=True, exist_ok=True)
    sim.customers.to_parquet(OUTPUT / "customers.parquet", index=False)
    sim.terminals.to_parquet(OUTPUT / "terminals.parquet", index=False)
    transactions.to_parquet(OUTPUT / "transactions.parquet", index=False)
    start = pd.Timestamp(world.start_date)
    batch = {
        "start": start.isoformat(), "end": (start + pd.Timedelta(days=world.n_days)).isoformat(),
        "scale": scale, "seed": seed, "shift_day": shift_day, "shift": shift,
    }
    (OUTPUT / "batch.json").write_text(json.dumps(batch, indent=1) + "\n")
    taken_in = (start + pd.Timedelta(days=world.n_days)).to_pydatetime()
intake = {"taken_in": taken_in.isoformat(timespec="seconds"), "source": source or "simulated", "by": "generate"}
(OUTPUT / "intake.json").write_text(json.dumps(intake, indent=1) + "\n")
batch, intake

# %%
counts = simulate.summary(transactions)
nbops.log_metric({**counts, "fraud_rate": round(counts["fraud_rate"], 6)})
counts

# %% [markdown]
# Transactions and frauds by day: the compromised terminals and cards of scenarios 2 and 3
# come and go, so the daily fraud count wanders.

# %%
daily = transactions.groupby("tx_time_days").agg(transactions=("tx_fraud", "size"), frauds=("tx_fraud", "sum")).reset_index()
daily = daily.rename(columns={"tx_time_days": "day"})
nbops.log_plot("daily_frauds", daily, x="day", y="frauds", template="linear")
daily.describe().round(1)
