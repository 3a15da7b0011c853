# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Evaluate: the most recent weeks, as an investigation team would live them
#
# On the test weeks (the most recent ones, after a delay the model never saw):
# * **ROC AUC** and **average precision** rank the scores of all transactions;
# * **card precision@k**: each day a team reviews the `k` cards with the highest score (a card's
#   score is its riskiest transaction of the day); the share of them that were really compromised,
#   averaged over days. A card found on one day is blocked, so it leaves the later days' lists
#   (`nbops.precision_at_k`);
# * **cost of the decisions** at the threshold chosen in training: reviews plus missed frauds,
#   per day, beside the cost of reviewing nothing and of the best threshold in hindsight.
#
# The plots: the precision-recall curve, card precision@k by day, and cost against threshold.

# %% tags=["parameters"]
k = 100

# %%
import json
from pathlib import Path

import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

import nbops
from fraudkit.features import feature_names

FEATURES = feature_names()

# %%
test = pd.read_parquet("data/features/test.parquet")
model = nbops.load_model("fraud-detector")
decision = json.loads(Path("models/fraud-detector.json").read_text())["decision"]
scores = model.predict_proba(test[FEATURES])[:, 1]
labels = test["tx_fraud"]
days = test["tx_time_days"]
n_days = days.nunique()

# %%
def ranking(scored):
    """How well scores rank the test weeks: the metrics, and card precision@k day by day."""
    per_day = nbops.precision_at_k(labels, scored, k=k, groups=days, entities=test["customer_id"])
    return {
        "roc_auc": round(float(roc_auc_score(labels, scored)), 6),
        "average_precision": round(float(average_precision_score(labels, scored)), 6),
        f"card_precision_at_{k}": round(float(per_day["precision"].mean()), 6),
    }, per_day


def ranking_metrics(any_model) -> dict:
    """The same measure for any model: the challenger here, the registry's champion below."""
    return ranking(any_model.predict_proba(test[FEATURES])[:, 1])[0]


threshold = decision["threshold"]
costs = dict(review_cost=decision["review_cost"], miss_cost=decision["miss_cost"])
at_threshold = nbops.cost_curve(labels, scores, thresholds=[threshold], **costs).iloc[0]
hindsight = nbops.choose_threshold(labels, scores, **costs)
ranked, daily = ranking(scores)
metrics = {
    **ranked,
    "flagged_per_day": round(float(at_threshold["flagged"]) / n_days, 3),
    "missed_frauds_per_day": round(float(at_threshold["missed"]) / n_days, 3),
    "cost_per_day": round(float(at_threshold["cost"]) / n_days, 3),
    "cost_per_day_reviewing_nothing": round(hindsight["cost_flag_nothing"] / n_days, 3),
    "cost_per_day_best_threshold": round(hindsight["cost"] / n_days, 3),
}
nbops.log_metric(metrics)
metrics

# %% [markdown]
# **Champion and challenger on the same weeks.** The versions the registry holds in staging and
# production (if any) are scored on these test weeks with the same function; promotion's
# champion gate compares the challenger with those figures rather than with the ones each
# champion had on its own, older test weeks.

# %%
champions = nbops.compare_champion("fraud-detector", ranking_metrics)
pd.DataFrame({"challenger": ranked, **{f"{s} {c['version']}": c["metrics"] for s, c in champions.items()}})

# %%
nbops.log_pr_curve(labels, scores)
nbops.log_plot("card_precision_by_day", daily.rename(columns={"group": "day"}), x="day", y="precision", template="linear")
curve = nbops.cost_curve(labels, scores, thresholds=101, **costs)
curve["cost_per_day"] = (curve["cost"] / n_days).round(3)
nbops.log_plot("cost_by_threshold", curve[["threshold", "cost_per_day", "flagged", "missed"]], x="threshold", y="cost_per_day", template="linear")
curve.iloc[::10]
