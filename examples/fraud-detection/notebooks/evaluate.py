# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Evaluate: the most recent weeks, as an investigation team would live them — and the handbook's protocol
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
#
# **Two protocols, side by side.** The figures above are this project's: one model trained on
# `featurize.train_weeks`, tested on the pooled `test_weeks`, every card kept. The handbook (Le
# Borgne et al.) measures otherwise, and its baselines can only be compared on its own terms
# (`fraudkit/protocol.py`): prequential folds of one training week, one week of delay, one test
# week; cards already known to be compromised left out of the test days; card precision@k per
# day with k the handbook's 100 cards of 5,000, scaled to the world. The chosen model's
# configuration is refitted on each fold's training week. `handbook_split_*` is chapter 3's
# single split (the latest fold), `handbook_prequential_*` chapter 5's four folds averaged.

# %% tags=["parameters"]
k = 100

# %%
import json
from pathlib import Path

import pandas as pd
from sklearn.base import clone
from sklearn.metrics import average_precision_score, roc_auc_score
from threadpoolctl import threadpool_limits

import nbops
from fraudkit import protocol
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

# %% [markdown]
# ## The handbook's protocol

# %%
everything = pd.read_parquet("data/features/all.parquet")
start = protocol.first_training_day(protocol.origin_of(everything), int(everything["tx_time_days"].max()))
handbook_k = protocol.scaled_k(everything["customer_id"].nunique())
with threadpool_limits(1):  # one thread: the same fits give the same figures on any machine
    folds = protocol.evaluate(lambda: clone(model), everything, FEATURES, start, handbook_k)
split, mean = folds.iloc[0], folds.mean(numeric_only=True)
handbook = {"handbook_k": handbook_k, "handbook_first_training_day": start, "handbook_folds": len(folds)}
for name in ("roc_auc", "average_precision", "card_precision_at_k"):
    handbook[f"handbook_split_{name}"] = round(float(split[name]), 6)
    handbook[f"handbook_prequential_{name}"] = round(float(mean[name]), 6)
handbook["handbook_prequential_card_precision_at_k_known_cards_kept"] = round(float(mean["card_precision_at_k_known_cards_kept"]), 6)
nbops.log_metric(handbook)
folds.round(4)

# %%
pd.DataFrame({
    "this project's protocol": {"roc_auc": ranked["roc_auc"], "average_precision": ranked["average_precision"]},
    "handbook, chapter 3 split": {n: handbook[f"handbook_split_{n}"] for n in ("roc_auc", "average_precision")},
    "handbook, chapter 5 prequential": {n: handbook[f"handbook_prequential_{n}"] for n in ("roc_auc", "average_precision")},
})

# %%
nbops.log_pr_curve(labels, scores)
nbops.log_plot("card_precision_by_day", daily.rename(columns={"group": "day"}), x="day", y="precision", template="linear")
curve = nbops.cost_curve(labels, scores, thresholds=101, **costs)
curve["cost_per_day"] = (curve["cost"] / n_days).round(3)
nbops.log_plot("cost_by_threshold", curve[["threshold", "cost_per_day", "flagged", "missed"]], x="threshold", y="cost_per_day", template="linear")
curve.iloc[::10]
