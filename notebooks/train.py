# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Train: a failure classifier
#
# Gradient-boosted trees (scikit-learn's `HistGradientBoostingClassifier`) on the sensor readings
# and derived features of `data/features/train.csv`, saved with `nbops.save_model`: a skops file
# plus a manifest with its input signature and its predictions on a sample, which promotion
# replays to prove the package predicts the same, and (`reference=X_train`) a profile of the
# training data and the model's scores on it, which `nbops monitor` compares live traffic with.

# %% tags=["parameters"]
learning_rate = 0.1
max_iter = 200
max_leaf_nodes = 31
min_samples_leaf = 20
l2_regularization = 0.0
seed = 42

# %%
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import nbops

TARGET = "Machine failure"

# %%
train = pd.read_csv(nbops.input_path("data/features/train.csv"))
X_train, y_train = train.drop(columns=[TARGET]), train[TARGET]

model = make_pipeline(
    make_column_transformer(
        (OneHotEncoder(categories=[["L", "M", "H"]], handle_unknown="ignore"), ["Type"]),
        remainder="passthrough",
        verbose_feature_names_out=False,
    ),
    HistGradientBoostingClassifier(
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf,
        l2_regularization=l2_regularization,
        early_stopping=False,  # a fixed number of iterations: the same data gives the same model
        random_state=seed,
    ),
)
model.fit(X_train, y_train)
print(f"trained on {len(X_train)} processes, {int(y_train.sum())} failures")

# %%
manifest = nbops.save_model(model, "failure-predictor", sample_input=X_train.head(20), reference=X_train)
manifest["sha256"]
