"""The handbook's validation protocol, written from its published rules (Le Borgne et al.,
*Reproducible Machine Learning for Credit Card Fraud Detection – Practical Handbook*, chapters 3
"Baseline fraud detection system" and 5 "Model validation and selection"; the text, not its GPLv3 code):

* a fold trains on one week, leaves out the next week (the labels of the delay period are not
  known yet when the model is trained) and tests on the week after;
* chapter 3 uses one such split, its training week starting on 2018-07-25; chapter 5 averages
  four folds (prequential validation), each a week earlier than the one before;
* the test set leaves out the cards already known to be compromised: a card found fraudulent from
  the training week's start up to the test day minus the delay and one day (labels arrive a week
  late) is blocked, so it is no test of the model on that day;
* card precision@k per day: each day the k cards with the highest score (a card's riskiest
  transaction that day) are reviewed; the share of them that were compromised, averaged over the
  test days, a card found on one day leaving the later days' lists (`nbops.precision_at_k`).

The handbook's k is 100 of its 5,000 cards; `scaled_k` keeps that share for a smaller world.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pandas as pd

#: Chapter 3's training week starts here; chapter 5's folds step back a week at a time from it.
HANDBOOK_START = "2018-07-25"
TRAIN_DAYS = DELAY_DAYS = TEST_DAYS = 7
FOLDS = 4
#: The handbook reviews 100 cards a day among 5,000.
K_PER_CARDS = (100, 5_000)


@dataclass(frozen=True)
class Fold:
    number: int  # 0: the latest (chapter 3's split), 1, 2, …: a week earlier each
    train_first: int  # the first day of the training week

    @property
    def test_first(self) -> int:
        return self.train_first + TRAIN_DAYS + DELAY_DAYS

    def days(self) -> str:
        return f"train {self.train_first}–{self.train_first + TRAIN_DAYS - 1}, test {self.test_first}–{self.test_first + TEST_DAYS - 1}"


def first_training_day(origin: pd.Timestamp, last_day: int, folds: int = FOLDS, preferred: str = HANDBOOK_START) -> int:
    """The day (counted from `origin`, the data's day 0) on which the latest fold's training week
    starts: the handbook's own date when the data holds all its folds, else the latest start
    whose test week ends with the data. ValueError when the data is too short for the folds."""
    wanted = (pd.Timestamp(preferred) - pd.Timestamp(origin).normalize()).days
    latest = last_day + 1 - (TRAIN_DAYS + DELAY_DAYS + TEST_DAYS)
    earliest = 7 * (folds - 1)
    start = wanted if earliest <= wanted <= latest else latest
    if start < earliest:
        need = 7 * (folds - 1) + TRAIN_DAYS + DELAY_DAYS + TEST_DAYS
        raise ValueError(f"the handbook's {folds} folds need {need} days of transactions; the data has {last_day + 1}")
    return start


def folds_from(start: int, folds: int = FOLDS) -> list[Fold]:
    return [Fold(number, start - 7 * number) for number in range(folds)]


def test_set(featured: pd.DataFrame, fold: Fold, delay: int = DELAY_DAYS, remove_known: bool = True) -> pd.DataFrame:
    """The fold's test week, leaving out on each day the cards known to be compromised by then."""
    days = featured["tx_time_days"]
    test = featured[(days >= fold.test_first) & (days < fold.test_first + TEST_DAYS)]
    if not remove_known:
        return test
    frauds = featured[(featured["tx_fraud"] == 1) & (days >= fold.train_first)]
    kept = []
    for day, rows in test.groupby("tx_time_days", sort=True):
        known = frauds.loc[frauds["tx_time_days"] <= day - delay - 1, "customer_id"].unique()
        kept.append(rows[~rows["customer_id"].isin(known)])
    return pd.concat(kept) if kept else test.iloc[:0]


def scaled_k(cards: int) -> int:
    """The handbook's 100 cards a day among 5,000, for a world of `cards` cards."""
    per, among = K_PER_CARDS
    return max(1, round(per * cards / among))


def measure(labels: Any, scores: Any, days: Any, cards: Any, k: int) -> dict[str, float]:
    """ROC AUC, average precision and card precision@k per day (averaged)."""
    import nbops
    from sklearn.metrics import average_precision_score, roc_auc_score

    daily = nbops.precision_at_k(labels, scores, k=k, groups=days, entities=cards)
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        "card_precision_at_k": float(daily["precision"].mean()),
    }


def evaluate(make_model: Callable[[], Any], featured: pd.DataFrame, features: Sequence[str], start: int, k: int,
             folds: int = FOLDS) -> pd.DataFrame:
    """Each fold: a fresh model (`make_model()`) fitted on the training week, measured on the test
    week with the known cards removed, and card precision@k with them kept (how much the filter
    matters). One row per fold."""
    rows = []
    days = featured["tx_time_days"]
    for fold in folds_from(start, folds):
        train = featured[(days >= fold.train_first) & (days < fold.train_first + TRAIN_DAYS)]
        if train.empty or train["tx_fraud"].nunique() < 2:
            raise ValueError(f"the handbook's fold {fold.number} ({fold.days()}) has no fraud to learn from in its training week")
        model = make_model().fit(train[list(features)], train["tx_fraud"])
        test = test_set(featured, fold)
        scores = model.predict_proba(test[list(features)])[:, 1]
        figures = measure(test["tx_fraud"], scores, test["tx_time_days"], test["customer_id"], k)
        unfiltered = test_set(featured, fold, remove_known=False)
        kept = measure(unfiltered["tx_fraud"], model.predict_proba(unfiltered[list(features)])[:, 1],
                       unfiltered["tx_time_days"], unfiltered["customer_id"], k)
        rows.append({
            "fold": fold.number, "train_first_day": fold.train_first, "test_first_day": fold.test_first,
            "train_rows": len(train), "test_rows": len(test), "known_card_rows_removed": len(unfiltered) - len(test),
            **figures, "card_precision_at_k_known_cards_kept": kept["card_precision_at_k"],
        })
    return pd.DataFrame(rows)


def origin_of(featured: pd.DataFrame) -> pd.Timestamp:
    """Day 0 of the data: a transaction's datetime less its seconds (the time fields agree: validate checks it)."""
    first = featured.iloc[0]
    return (pd.Timestamp(first["tx_datetime"]) - pd.to_timedelta(int(first["tx_time_seconds"]), unit="s")).normalize()
