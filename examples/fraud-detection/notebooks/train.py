# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Train: a fraud detector, chosen on later weeks, with a threshold chosen by cost
#
# **Model selection is prequential** — never on shuffled folds, which would let a model learn
# from the future of the transactions it is judged on. For each of the last `validation_weeks`
# weeks of the training period, every candidate is fitted on the days before that week minus the
# `delay_days` whose labels are not known yet, and scored on the week; the candidate with the best
# mean average precision wins, and is refitted on the whole training period.
#
# The candidates are scikit-learn pipelines that handle the imbalance (under 1% fraud) by
# weighting the classes (`class_weight`): a scaled logistic regression, and gradient-boosted
# trees of each size in `max_leaf_nodes`.
#
# **The decision threshold is chosen by cost**, on the same out-of-time validation scores: flagging
# a transaction for review costs `review_cost`, a missed fraud loses `missed_fraud_loss`.
# `nbops.save_model(..., decision=...)` writes it into the model's manifest; the promoted package
# answers each transaction's score and its decision.

# %% tags=["parameters"]
validation_weeks = 2
calibration_folds = 3
delay_days = 7
class_weight = "balanced"
max_leaf_nodes = [31]
learning_rate = 0.1
max_iter = 100
review_cost = 3.0
missed_fraud_loss = 150.0
seed = 0
n_jobs = 2

# %%
import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from sklearn.base import clone
from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import nbops
from fraudkit.features import feature_names

FEATURES = feature_names()

# %%
train = pd.read_parquet("data/features/train.parquet")


def candidates():
    yield "logistic regression", make_pipeline(
        StandardScaler(), LogisticRegression(class_weight=class_weight, max_iter=1000)
    )
    for leaves in max_leaf_nodes:
        yield f"boosted trees, {leaves} leaves", make_pipeline(HistGradientBoostingClassifier(
            learning_rate=learning_rate, max_iter=max_iter, max_leaf_nodes=leaves, class_weight=class_weight,
            early_stopping=False, random_state=seed,  # a fixed number of rounds: the same data gives the same model
        ))


# %% [markdown]
# ## Prequential validation

# %%
first, end = int(train["tx_time_days"].min()), int(train["tx_time_days"].max()) + 1
folds = []
for back in range(validation_weeks, 0, -1):
    week_start = end - 7 * back
    fit_end = week_start - delay_days
    if fit_end - first < 7:
        raise ValueError(f"params.yaml train.validation_weeks={validation_weeks}: too few training weeks to validate on")
    folds.append((first, fit_end, week_start, week_start + 7))

def fit_and_score(name, model, fold):
    fit_start, fit_end, val_start, val_end = fold
    days = train["tx_time_days"]
    fit, val = train[(days >= fit_start) & (days < fit_end)], train[(days >= val_start) & (days < val_end)]
    model.fit(fit[FEATURES], fit["tx_fraud"])
    scores = model.predict_proba(val[FEATURES])[:, 1]
    return name, val_start, scores, average_precision_score(val["tx_fraud"], scores)


# The fits are independent: `n_jobs` of them at once, each in one thread (OpenMP threads that
# spin-wait for each other only slow down on a busy machine; the results are the same).
with threadpool_limits(1):
    results = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(fit_and_score)(name, clone(model), fold) for name, model in candidates() for fold in folds
    )
validation = pd.DataFrame([{"candidate": n, "validation_week_start": w, "average_precision": ap} for n, w, _, ap in results])
scored = {name: np.concatenate([s for n, _, s, _ in results if n == name]) for name, _ in candidates()}
summary = validation.groupby("candidate", sort=False)["average_precision"].mean().round(6)
best = summary.idxmax()
summary.to_frame("mean average precision")

# %%
labels = pd.concat([train[(train["tx_time_days"] >= s) & (train["tx_time_days"] < e)] for _, _, s, e in folds])["tx_fraud"]
choice = nbops.choose_threshold(labels, scored[best], review_cost=review_cost, miss_cost=missed_fraud_loss)
choice["chosen_on"] = f"prequential validation, {validation_weeks} weeks"
nbops.log_metric({
    "validation_average_precision": float(summary[best]),
    "decision_threshold": round(choice["threshold"], 6),
})
print(f"chosen: {best}; threshold {choice['threshold']:.4f} flags {choice['flagged']} of {choice['rows']} validation rows")
choice

# %% [markdown]
# ## The chosen candidate, refitted on the whole training period

# %%
model = dict(candidates())[best]
with threadpool_limits(1):
    model.fit(train[FEATURES], train["tx_fraud"])
# %% [markdown]
# ## The calibration monitoring estimates performance with
#
# Labels arrive a week late, so for a week the monitor sees scores but not what they cost. It
# estimates precision, recall, ROC AUC and the decisions' cost from the scores alone
# (`nbops monitor`; confidence-based, as NannyML's CBPE), which needs to know how often a score
# turns out to be fraud: the calibration the profile records. Scores of rows the model was
# trained on are too sure of themselves, so these are **out of fold**: the training weeks in
# `calibration_folds` consecutive blocks, each block scored by the chosen configuration fitted on
# the other blocks — models of nearly the final one's size, unlike the prequential folds'.

# %%
blocks = np.minimum((train["tx_time_days"] - first) // 7 * calibration_folds // ((end - first + 6) // 7), calibration_folds - 1)
with threadpool_limits(1), parallel_config(backend="threading"):  # as the fits above: threads, not processes
    out_of_fold = cross_val_predict(dict(candidates())[best], train[FEATURES], train["tx_fraud"], groups=blocks,
                                    cv=LeaveOneGroupOut(), method="predict_proba", n_jobs=n_jobs)[:, 1]
calibration = {"labels": train["tx_fraud"], "scores": out_of_fold,
               "source": f"out-of-fold scores of the training weeks, {calibration_folds} blocks"}

# %%
# the sample the package must reproduce holds frauds and genuine transactions alike
sample = pd.concat([train[train["tx_fraud"] == 0].head(20), train[train["tx_fraud"] == 1].head(20)])[FEATURES]
# reference=: the training features' profile, which the package carries for `nbops monitor`,
# with the calibration of the out-of-fold scores
manifest = nbops.save_model(
    model, "fraud-detector", sample_input=sample, decision=choice, reference=train[FEATURES], calibration=calibration,
    description=f"{best}, chosen by prequential validation; threshold by cost",
)
manifest["decision"], manifest["profile"]["calibration"]
