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
# A random forest on the sensor readings and derived features of `data/features/train.csv`,
# saved with `nbops.save_model` (a skops file plus a manifest with its input signature and
# the predictions on a sample, which promotion replays to prove the package predicts the same).

# %% tags=["parameters"]
n_estimators = 300
max_depth = 16
min_samples_leaf = 1
class_weight = "balanced_subsample"
seed = 42

# %%
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import nbops

TARGET = "Machine failure"

# %%
train = pd.read_csv("data/features/train.csv")
X_train, y_train = train.drop(columns=[TARGET]), train[TARGET]

model = make_pipeline(
    make_column_transformer(
        (OneHotEncoder(categories=[["L", "M", "H"]], handle_unknown="ignore"), ["Type"]),
        remainder="passthrough",
        verbose_feature_names_out=False,
    ),
    RandomForestClassifier(
        n_estimators=n_estimators,
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        class_weight=class_weight,
        random_state=seed,
        n_jobs=-1,
    ),
)
model.fit(X_train, y_train)

# %%
forest = model[-1]
importance = pd.DataFrame({
    "feature": model[0].get_feature_names_out(),
    "importance": forest.feature_importances_.round(6),
}).sort_values("importance", ascending=False)
nbops.log_plot("feature_importance", importance, x="importance", y="feature", template="bar_horizontal")
importance

# %%
manifest = nbops.save_model(model, "failure-predictor", sample_input=X_train.head(20))
manifest["sha256"]
