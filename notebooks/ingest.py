# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Ingest: machine sensor readings, a window of daily batches
#
# Produces `data/raw.csv`, one row per machining process in the layout of the
# [AI4I 2020 Predictive Maintenance Dataset](https://archive.ics.uci.edu/dataset/601) (S. Matzka, 2020),
# with the `Date` of its batch in front.
#
# New data arrives as daily batches, `data/batches/YYYY-MM-DD.csv`, recorded by DVC (the `batches` stage;
# on a fresh clone it seeds the folder with the simulated plant's first month). This stage takes the
# batches of the last `window_days` days up to `until` (empty: the newest batch). A batch outside the
# window leaves `data/raw.csv` byte for byte as it was: DVC re-runs this stage and skips all that follows.

# %% tags=["parameters"]
window_days = 30
until = ""  # the window's last day, YYYY-MM-DD; empty: the newest batch

# %%
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

import nbops

sys.path.insert(0, str(Path.cwd()))  # nbops runs a stage in the project root, where plantsim lives
from plantsim.ai4i import FAILURE_MODES  # noqa: E402
from plantsim.batches import in_window, list_batches, read_batch  # noqa: E402

BATCHES = nbops.input_path("data/batches")
OUTPUT = nbops.output_path("data/raw.csv")  # under .nbops/scratch/ingest/ when exploring

# %%
batches = list_batches(BATCHES)
if not batches:
    raise FileNotFoundError(f"{BATCHES} holds no batch: run `dvc repro` (its batches stage seeds it) or add some")
last = dt.date.fromisoformat(until) if until else batches[-1].day
chosen = in_window(batches, last, window_days)
if not chosen:
    raise ValueError(f"no batch of {BATCHES} falls in the {window_days} days up to {last}: check ingest.until")
print(f"{len(chosen)} of {len(batches)} batches, {chosen[0].day} to {chosen[-1].day} (the {window_days} days up to {last})")

# %%
raw = pd.concat([read_batch(b).assign(Date=b.day.isoformat()) for b in chosen], ignore_index=True)
raw = raw[["Date", *raw.columns.drop("Date")]]
OUTPUT.parent.mkdir(parents=True, exist_ok=True)
raw.to_csv(OUTPUT, index=False, lineterminator="\n")
print(f"{len(raw)} processes, {raw['Machine failure'].sum()} failures ({raw['Machine failure'].mean():.2%})")
raw[FAILURE_MODES].sum()
