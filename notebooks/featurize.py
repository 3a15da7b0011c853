# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Featurize: clean readings, derive physical features, split
#
# Reads `data/raw.csv`, writes `data/features/train.csv` and `data/features/test.csv`. `nbops.input_path` and
# `nbops.output_path` name them: an interactive run writes its copies under `.nbops/scratch/` instead,
# and reads the newer of its own and the pipeline's, so exploring never changes what `dvc repro` produced.
# The failure-mode columns (TWF, HDF, …) are dropped: they are the label in disguise.

# %% tags=["parameters"]
test_size = 0.2
seed = 42

# %%
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

import nbops

TARGET = "Machine failure"
OUTPUT = nbops.output_path("data/features")  # under .nbops/scratch/featurize/ when exploring
SENSORS = [
    "Type", "Air temperature [K]", "Process temperature [K]",
    "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]",
]

# %%
raw = pd.read_csv(nbops.input_path("data/raw.csv"))
clean = raw.dropna(subset=SENSORS + [TARGET]).drop_duplicates(subset="UDI")
clean = clean[(clean["Torque [Nm]"] > 0) & (clean["Rotational speed [rpm]"] > 0) & clean["Type"].isin(["L", "M", "H"])]
print(f"kept {len(clean)} of {len(raw)} rows")

# %%
features = clean[SENSORS].copy()
features["Power [W]"] = (features["Torque [Nm]"] * features["Rotational speed [rpm]"] * 2 * np.pi / 60).round(3)
features["Temperature difference [K]"] = (features["Process temperature [K]"] - features["Air temperature [K]"]).round(3)
features["Strain [minNm]"] = (features["Tool wear [min]"] * features["Torque [Nm]"]).round(3)
features[TARGET] = clean[TARGET].astype(int)

train, test = train_test_split(features, test_size=test_size, stratify=features[TARGET], random_state=seed)
OUTPUT.mkdir(parents=True, exist_ok=True)
train.to_csv(OUTPUT / "train.csv", index=False)
test.to_csv(OUTPUT / "test.csv", index=False)
print(f"train: {len(train)} rows ({train[TARGET].mean():.2%} failures), test: {len(test)} rows ({test[TARGET].mean():.2%} failures)")
