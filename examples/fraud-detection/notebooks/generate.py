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
# `transactions.parquet`, `batch.json`) is taken in instead, as real data would arrive.

# %% tags=["parameters"]
scale = "small"
seed = 0
shift_day = -1
shift = {}
source = ""

# %%
import json
import shutil
from pathlib import Path

import pandas as pd

import nbops
from fraudkit import simulate

OUTPUT = Path("data/raw")
FILES = ("customers.parquet", "terminals.parquet", "transactions.parquet", "batch.json")

# %%
if scale not in simulate.WORLDS:
    raise ValueError(f"params.yaml generate.scale is {scale!r}; choose one of {', '.join(simulate.WORLDS)}")
world = simulate.WORLDS[scale]
OUTPUT.mkdir(parents=True, exist_ok=True)
if source:
    missing = [name for name in FILES if not (Path(source) / name).exists()]
    if missing:
        raise FileNotFoundError(f"params.yaml generate.source: {source} lacks {', '.join(missing)}")
    for name in FILES:
        shutil.copyfile(Path(source) / name, OUTPUT / name)
    batch = json.loads((OUTPUT / "batch.json").read_text())
    transactions = pd.read_parquet(OUTPUT / "transactions.parquet")
else:
    rules = simulate.FraudRules()
    sim = simulate.simulate(world, rules, seed=seed, shift_day=shift_day, shifted=rules.updated(shift) if shift else None)
    transactions = sim.transactions
    sim.customers.to_parquet(OUTPUT / "customers.parquet", index=False)
    sim.terminals.to_parquet(OUTPUT / "terminals.parquet", index=False)
    transactions.to_parquet(OUTPUT / "transactions.parquet", index=False)
    start = pd.Timestamp(world.start_date)
    batch = {
        "start": start.isoformat(), "end": (start + pd.Timedelta(days=world.n_days)).isoformat(),
        "scale": scale, "seed": seed, "shift_day": shift_day, "shift": shift,
    }
    (OUTPUT / "batch.json").write_text(json.dumps(batch, indent=1) + "\n")
batch

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
