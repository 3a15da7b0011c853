# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Train a first classifier
#
# A starter stage: make it yours, or add notebooks and turn each into a stage with
# `nbops stage add notebooks/NAME.ipynb`.
#
# * The cell tagged `parameters` holds the defaults for interactive runs; the pipeline injects
#   the `train` section of `params.yaml` in their place (keep the two equal: `nbops check` warns).
# * `nbops.log_metric`, `nbops.log_pr_curve` and `nbops.save_model` write `metrics/train.json`,
#   `plots/train/pr_curve.json` and `models/classifier.skops` (with `reference=X_train`, also the
#   training profile `nbops monitor` compares live data with), which `dvc.yaml` declares — in the
#   pipeline; run here in JupyterLab, they write under `.nbops/scratch/train/` instead.

# %% tags=["parameters"]
n_samples = 2000
C = 1.0
seed = 0

# %%
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

import nbops

# %%
X, y = make_classification(n_samples=n_samples, n_features=8, n_informative=4, n_clusters_per_class=1, random_state=seed)
X = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).round(6)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
model = LogisticRegression(C=C, max_iter=1000).fit(X_train, y_train)

# %%
scores = model.predict_proba(X_test)[:, 1]
nbops.log_metric({
    "accuracy": round(float(accuracy_score(y_test, model.predict(X_test))), 6),
    "roc_auc": round(float(roc_auc_score(y_test, scores)), 6),
})
nbops.log_pr_curve(y_test, scores)

# %%
manifest = nbops.save_model(model, "classifier", sample_input=X_test.head(20), reference=X_train)
manifest["sha256"]
