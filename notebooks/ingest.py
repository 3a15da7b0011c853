# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Ingest: machine sensor readings
#
# Produces `data/raw.csv`, one row per machining process in the layout of the
# [AI4I 2020 Predictive Maintenance Dataset](https://archive.ics.uci.edu/dataset/601) (S. Matzka, 2020).
#
# By default the rows are generated following the published data-generation rules of that data set;
# set `source` in `params.yaml` to read a CSV in the same layout instead (such as the real data).

# %% tags=["parameters"]
seed = 42
n_rows = 10000
source = ""  # a CSV in the AI4I 2020 layout; empty: generate synthetic readings

# %%
import numpy as np
import pandas as pd

import nbops

OUTPUT = nbops.output_path("data/raw.csv")  # under .nbops/scratch/ingest/ when exploring
AI4I_COLUMNS = [
    "UDI", "Product ID", "Type", "Air temperature [K]", "Process temperature [K]",
    "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]", "Machine failure",
    "TWF", "HDF", "PWF", "OSF", "RNF",
]


# %% [markdown]
# ## The generator
#
# Matzka's rules, as published with the data set:
# * product quality variants L, M and H (60 / 30 / 10 % of the products in the published data);
# * air temperature: a random walk normalised to a standard deviation of 2 K around 300 K;
# * process temperature: air temperature plus 10 K plus a random walk normalised to 1 K;
# * torque: normally distributed around 40 Nm with a standard deviation of 10 Nm, no negative values;
# * rotational speed: derived from a power of 2860 W (the speed at which the spindle delivers 2860 W at
#   that torque), overlaid with normal noise — scaled so that speed and its spread match the published data;
# * tool wear: each process adds 5 / 3 / 2 minutes for variants H / M / L; the tool is replaced, or fails
#   (tool wear failure, TWF), at a wear drawn between 200 and 240 minutes;
# * heat dissipation failure (HDF): air–process temperature difference below 8.6 K and speed below 1380 rpm;
# * power failure (PWF): torque × angular speed below 3500 W or above 9000 W;
# * overstrain failure (OSF): tool wear × torque above 11,000 / 12,000 / 13,000 minNm for L / M / H;
# * random failure (RNF): 0.1 % of processes fail regardless of their parameters.
#
# `Machine failure` is 1 when any failure mode occurred.

# %%
def generate_ai4i(n_rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    variant = rng.choice(np.array(["L", "M", "H"]), size=n_rows, p=[0.6, 0.3, 0.1])

    def random_walk(sd: float) -> np.ndarray:
        walk = rng.normal(size=n_rows).cumsum()
        return (walk - walk.mean()) / walk.std() * sd

    air = np.round(300 + random_walk(2.0), 1)
    process = np.round(air + 10 + random_walk(1.0), 1)
    torque = np.round(np.clip(rng.normal(40, 10, n_rows), 3.5, None), 1)
    rpm_at_2860_w = 2860 / torque * 60 / (2 * np.pi)
    rpm = np.round(1075 + 0.627 * rpm_at_2860_w + rng.normal(0, 70, n_rows)).astype(int)

    wear_per_process = {"L": 2, "M": 3, "H": 5}
    wear = np.zeros(n_rows, dtype=int)
    twf = np.zeros(n_rows, dtype=int)
    current, limit = 0, rng.integers(200, 241)
    for i in range(n_rows):
        wear[i] = current
        if current >= limit:  # the tool is replaced in time, or fails at this process
            twf[i] = int(rng.random() < 0.4)
            current, limit = 0, rng.integers(200, 241)
        else:
            current += wear_per_process[variant[i]]

    power = torque * rpm * 2 * np.pi / 60
    hdf = ((process - air < 8.6) & (rpm < 1380)).astype(int)
    pwf = ((power < 3500) | (power > 9000)).astype(int)
    strain_limit = np.select([variant == "L", variant == "M"], [11000, 12000], 13000)
    osf = (wear * torque > strain_limit).astype(int)
    rnf = (rng.random(n_rows) < 0.001).astype(int)
    failure = ((twf + hdf + pwf + osf + rnf) > 0).astype(int)

    return pd.DataFrame({
        "UDI": np.arange(1, n_rows + 1),
        "Product ID": [f"{v}{n}" for v, n in zip(variant, rng.integers(10000, 60000, n_rows))],
        "Type": variant,
        "Air temperature [K]": air,
        "Process temperature [K]": process,
        "Rotational speed [rpm]": rpm,
        "Torque [Nm]": torque,
        "Tool wear [min]": wear,
        "Machine failure": failure,
        "TWF": twf, "HDF": hdf, "PWF": pwf, "OSF": osf, "RNF": rnf,
    })


# %%
if source:
    # utf-8-sig: the published CSV starts with a byte-order mark
    raw = pd.read_csv(source, encoding="utf-8-sig")
    missing = [c for c in AI4I_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{source} lacks the AI4I 2020 columns {missing}")
    raw = raw[AI4I_COLUMNS]
    if n_rows and n_rows < len(raw):
        raw = raw.sample(n=n_rows, random_state=seed).sort_values("UDI")
else:
    raw = generate_ai4i(n_rows, seed)

OUTPUT.parent.mkdir(parents=True, exist_ok=True)
raw.to_csv(OUTPUT, index=False)
print(f"{len(raw)} processes, {raw['Machine failure'].sum()} failures ({raw['Machine failure'].mean():.2%})")
raw[["TWF", "HDF", "PWF", "OSF", "RNF"]].sum()
