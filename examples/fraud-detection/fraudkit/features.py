"""Features of each transaction from what was known when it happened, vectorised.

The handbook's feature set (Le Borgne et al., chapter "Baseline feature transformation"):

* `tx_during_weekend`, `tx_during_night` (00:00–06:00);
* per customer, over the last 1, 7 and 30 days including this transaction: the number of
  transactions and their mean amount;
* per terminal, over the 1, 7 and 30 days before a 7-day feedback delay — (t − delay − w, t − delay] —
  the number of transactions and the share of them that were fraud ("risk"). Fraud labels arrive
  about a week after a transaction, so labels younger than the delay are never used.

Every window is computed for all transactions at once: rows are sorted by (entity, time), and
one `searchsorted` over the combined key finds where each window starts; prefix sums then give
counts, sums and fraud counts. There is no Python loop over transactions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
WINDOWS = (1, 7, 30)
DELAY_DAYS = 7


def feature_names(windows: Sequence[int] = WINDOWS) -> list[str]:
    names = ["tx_amount", "tx_during_weekend", "tx_during_night"]
    names += [f"customer_nb_tx_{w}d" for w in windows] + [f"customer_avg_amount_{w}d" for w in windows]
    names += [f"terminal_nb_tx_{w}d" for w in windows] + [f"terminal_risk_{w}d" for w in windows]
    return names


def add_features(tx: pd.DataFrame, windows: Sequence[int] = WINDOWS, delay_days: int = DELAY_DAYS) -> pd.DataFrame:
    """`tx` (transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, tx_time_seconds,
    tx_fraud) with the feature columns added, in the input's row order."""
    out = tx.copy()
    when = pd.DatetimeIndex(tx["tx_datetime"])
    out["tx_during_weekend"] = (when.day_of_week >= 5).astype(np.int64)
    out["tx_during_night"] = (when.hour < 6).astype(np.int64)
    seconds = tx["tx_time_seconds"].to_numpy(np.int64)
    amount = tx["tx_amount"].to_numpy(np.float64)
    fraud = tx["tx_fraud"].to_numpy(np.float64)

    customer = _Windows(tx["customer_id"].to_numpy(np.int64), seconds)
    for w in windows:
        count, total = customer.sums(amount, w * SECONDS_PER_DAY, 0)
        out[f"customer_nb_tx_{w}d"] = count
        out[f"customer_avg_amount_{w}d"] = np.round(total / np.maximum(count, 1), 6)

    terminal = _Windows(tx["terminal_id"].to_numpy(np.int64), seconds)
    delay = delay_days * SECONDS_PER_DAY
    for w in windows:
        count, frauds = terminal.sums(fraud, w * SECONDS_PER_DAY, delay)
        out[f"terminal_nb_tx_{w}d"] = count
        out[f"terminal_risk_{w}d"] = np.where(count > 0, frauds / np.maximum(count, 1), 0.0)
    return out


class _Windows:
    """Sums over each row's entity's rows in the time window (t − lag − width, t − lag].

    With lag 0 the window ends at the row itself (ties: rows of the same second before it in
    the input's order, which is time order), so it includes the row; with a lag it ends at
    t − lag, so nothing younger than the lag is used.
    """

    def __init__(self, entity: np.ndarray, seconds: np.ndarray) -> None:
        span = int(seconds.max() - seconds.min()) + 1 if len(seconds) else 1
        self.base = seconds.min() if len(seconds) else 0
        # one key orders by entity, then time: entity * stride + time, with room for any window
        self.stride = np.int64(4 * span + 10 * SECONDS_PER_DAY * 100)
        self.order = np.lexsort((np.arange(len(seconds)), seconds, entity))  # stable within a second
        self.key = entity[self.order] * self.stride + (seconds[self.order] - self.base)
        self.position = np.empty(len(seconds), dtype=np.int64)
        self.position[self.order] = np.arange(len(seconds))

    def sums(self, values: np.ndarray, width: int, lag: int) -> tuple[np.ndarray, np.ndarray]:
        """(count, sum of `values`) over each row's window, in the input's row order."""
        prefix = np.r_[0.0, np.cumsum(values[self.order])]
        key = self.key
        if lag == 0:
            end = np.arange(len(key)) + 1  # up to and including the row itself
        else:
            end = np.searchsorted(key, key - lag, side="right")
        start = np.searchsorted(key, key - lag - width, side="right")
        count_sorted = end - start
        sum_sorted = prefix[end] - prefix[start]
        return count_sorted[self.position], sum_sorted[self.position]
