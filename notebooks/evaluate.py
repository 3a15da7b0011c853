# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Evaluate: how well the model finds failures on held-out processes
#
# ROC AUC and average precision rank the failure probabilities; F1 and recall of the failure
# class judge the decisions at `threshold`. All four are metrics for `dvc metrics show`;
# the precision-recall curve, the confusion matrix and the features' permutation importance are
# DVC plots.

# %% tags=["parameters"]
threshold = 0.5

# %%
import pandas as pd
from sklearn.metrics import average_precision_score, classification_report, f1_score, recall_score, roc_auc_score

import nbops

TARGET = "Machine failure"

# %%
test = pd.read_csv(nbops.input_path("data/features/test.csv"))
X_test, y_test = test.drop(columns=[TARGET]), test[TARGET]
model = nbops.load_model("failure-predictor")
scores = model.predict_proba(X_test)[:, 1]
predicted = (scores >= threshold).astype(int)

# %%
nbops.log_metric({
    "roc_auc": round(float(roc_auc_score(y_test, scores)), 6),
    "average_precision": round(float(average_precision_score(y_test, scores)), 6),
    "f1": round(float(f1_score(y_test, predicted)), 6),
    "recall": round(float(recall_score(y_test, predicted)), 6),
})
print(classification_report(y_test, predicted, target_names=["no failure", "failure"], digits=3))

# %%
nbops.log_pr_curve(y_test, scores)
nbops.log_confusion_matrix(y_test, predicted);  # `;`: the returned (absolute) path would make the report depend on where the project is

# %% [markdown]
# Which readings the model relies on: how much average precision drops on the test split when
# one column's values are shuffled (permutation importance, on held-out data).

# %%
from sklearn.inspection import permutation_importance

permuted = permutation_importance(
    model, X_test, y_test, scoring="average_precision", n_repeats=5, random_state=0
)
importance = pd.DataFrame({
    "feature": X_test.columns,
    "importance": permuted.importances_mean.round(6),
}).sort_values("importance", ascending=False)
nbops.log_plot("feature_importance", importance, x="importance", y="feature", template="bar_horizontal")
importance
