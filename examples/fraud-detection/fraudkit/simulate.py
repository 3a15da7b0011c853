"""A simulated stream of card transactions with three fraud scenarios, vectorised with numpy.

Written from the rules published in Le Borgne et al., *Reproducible Machine Learning for Credit
Card Fraud Detection – Practical Handbook* (ULB / Worldline), chapter "Transaction data
simulator" — from the text, not from its (GPLv3) code:

* customers and terminals at uniform locations on a square grid (100 × 100);
* a customer's mean amount ~ U(5, 100), its std = mean / 2, its mean number of transactions a
  day ~ U(0, 4); each day the number is a Poisson draw;
* a transaction's time of day ~ N(12 h, 20,000 s), kept when inside the day; a negative amount is
  redrawn from U(0, 2 × mean); amounts are rounded to cents;
* a customer pays at a terminal drawn uniformly from those within radius r = 5;
* fraud scenario 1: any amount over 220 is fraud;
* scenario 2: each day 2 terminals are compromised for the next 28 days: all their
  transactions are fraud;
* scenario 3: each day 3 customers are compromised for the next 14 days: a third of their
  transactions in that window have their amount multiplied by 5 and are fraud.

Scenarios are applied in that order, a later one relabelling a transaction an earlier one
marked. The handbook's setting (5,000 customers, 10,000 terminals, 183 days) is `WORLDS["full"]`;
`WORLDS["small"]` keeps its densities — a tenth of the customers and terminals on a tenth of the
area, a tenth of the daily compromises — over 15 weeks, for about 100,000 transactions.

A pattern shift is a parameter: `shift_day` and `shifted` rules apply to everything from that
day on (e.g. more compromised terminals, a smaller amount factor), including a fourth scenario
the handbook does not have, card testing: compromised cards make extra small payments at
random terminals anywhere, at any hour. It is off (0 cards a day) unless a shift turns it on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
#: The handbook's population, to which the daily compromise counts refer.
HANDBOOK_CUSTOMERS = 5_000
HANDBOOK_TERMINALS = 10_000


@dataclass(frozen=True)
class World:
    """Who and where: customers, terminals, days."""

    n_customers: int = 5_000
    n_terminals: int = 10_000
    n_days: int = 183
    grid: float = 100.0
    radius: float = 5.0
    start_date: str = "2018-04-01"

    @property
    def terminal_share(self) -> float:  # how much of the handbook's terminal population this is
        return self.n_terminals / HANDBOOK_TERMINALS

    @property
    def customer_share(self) -> float:
        return self.n_customers / HANDBOOK_CUSTOMERS


WORLDS = {
    "full": World(),
    # a tenth of the population on a tenth of the area: the same densities, so each customer
    # still has ~78 terminals within reach and each terminal ~1 transaction a day
    "small": World(n_customers=500, n_terminals=1_000, n_days=105, grid=100.0 / math.sqrt(10)),
}


@dataclass(frozen=True)
class FraudRules:
    """The fraud scenarios' parameters; daily counts are per handbook population and scale with
    the world (fractional expected counts are drawn: 0.2 a day is one day in five)."""

    amount_threshold: float = 220.0        # scenario 1
    terminals_per_day: float = 2.0         # scenario 2
    terminal_days: int = 28
    customers_per_day: float = 3.0         # scenario 3
    customer_days: int = 14
    customer_fraud_share: float = 1 / 3
    amount_factor: float = 5.0
    testing_cards_per_day: float = 0.0     # scenario 4 (not in the handbook): card testing
    testing_days: int = 7
    testing_payments_per_day: float = 3.0
    testing_amount_max: float = 5.0

    def updated(self, changes: Mapping[str, Any]) -> FraudRules:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown fraud rule(s) {', '.join(unknown)}; the rules are {', '.join(sorted(names))}")
        return dataclasses.replace(self, **dict(changes))


@dataclass
class Simulation:
    customers: pd.DataFrame
    terminals: pd.DataFrame
    transactions: pd.DataFrame


def simulate(
    world: World,
    rules: FraudRules = FraudRules(),
    *,
    seed: int = 0,
    shift_day: int | None = None,
    shifted: FraudRules | None = None,
) -> Simulation:
    """Customers, terminals and their transactions (sorted by time, with fraud labels)."""
    rng = np.random.default_rng(seed)
    customers = _customers(world, rng)
    terminals = _terminals(world, rng)
    reach_offsets, reach = _terminals_within_reach(customers, terminals, world.radius)
    tx = _transactions(world, customers, reach_offsets, reach, rng)
    shift = shift_day if shift_day is not None and shift_day >= 0 and shifted is not None else world.n_days

    def rules_on(day: int) -> FraudRules:
        return shifted if day >= shift and shifted is not None else rules

    tx = _add_card_testing(world, tx, rules_on, rng)
    _scenario_amount(tx, rules, shifted, shift)
    _scenario_terminals(world, tx, rules_on, rng)
    _scenario_customers(world, tx, rules_on, rng)
    return Simulation(customers, terminals, _finish(world, tx))


def _customers(world: World, rng: np.random.Generator) -> pd.DataFrame:
    n = world.n_customers
    xy = rng.uniform(0, world.grid, size=(n, 2))
    mean_amount = rng.uniform(5, 100, size=n)
    return pd.DataFrame({
        "customer_id": np.arange(n, dtype=np.int64),
        "x": xy[:, 0], "y": xy[:, 1],
        "mean_amount": mean_amount,
        "std_amount": mean_amount / 2,
        "mean_tx_per_day": rng.uniform(0, 4, size=n),
    })


def _terminals(world: World, rng: np.random.Generator) -> pd.DataFrame:
    xy = rng.uniform(0, world.grid, size=(world.n_terminals, 2))
    return pd.DataFrame({"terminal_id": np.arange(world.n_terminals, dtype=np.int64), "x": xy[:, 0], "y": xy[:, 1]})


def _terminals_within_reach(customers: pd.DataFrame, terminals: pd.DataFrame, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's terminals within `radius`, as CSR arrays (offsets, terminal ids)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(terminals[["x", "y"]].to_numpy())
    # a k-d tree query per customer (thousands), not per transaction
    lists = tree.query_ball_point(customers[["x", "y"]].to_numpy(), r=radius, return_sorted=True)
    counts = np.fromiter((len(found) for found in lists), dtype=np.int64, count=len(lists))
    offsets = np.r_[0, np.cumsum(counts)]
    flat = np.concatenate([np.asarray(found, dtype=np.int64) for found in lists]) if counts.sum() else np.zeros(0, np.int64)
    return offsets, flat


def _transactions(
    world: World, customers: pd.DataFrame, offsets: np.ndarray, reach: np.ndarray, rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    nc, nd = world.n_customers, world.n_days
    per_day = rng.poisson(customers["mean_tx_per_day"].to_numpy()[:, None], size=(nc, nd))
    cell = np.repeat(np.arange(nc * nd), per_day.ravel())
    customer, day = cell // nd, cell % nd
    n = len(cell)
    seconds = rng.normal(SECONDS_PER_DAY / 2, 20_000, size=n).astype(np.int64)  # truncated to whole seconds
    mean = customers["mean_amount"].to_numpy()[customer]
    amount = rng.normal(mean, customers["std_amount"].to_numpy()[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean[negative])
    reach_count = np.diff(offsets)[customer]
    pick = offsets[customer] + np.floor(rng.random(n) * np.maximum(reach_count, 1)).astype(np.int64)
    terminal = reach[np.minimum(pick, max(len(reach) - 1, 0))] if len(reach) else np.zeros(n, np.int64)
    keep = (seconds > 0) & (seconds < SECONDS_PER_DAY) & (reach_count > 0)
    return {
        "customer_id": customer[keep], "terminal_id": terminal[keep], "tx_time_days": day[keep],
        "tx_time_seconds": day[keep] * SECONDS_PER_DAY + seconds[keep], "tx_amount": np.round(amount[keep], 2),
        "tx_fraud": np.zeros(int(keep.sum()), dtype=np.int64), "tx_fraud_scenario": np.zeros(int(keep.sum()), dtype=np.int64),
    }


def _daily_count(expected: float, rng: np.random.Generator) -> int:
    """An integer count whose mean is `expected`: its whole part, plus one with the fraction's chance."""
    whole = math.floor(expected)
    return whole + int(rng.random() < expected - whole)


def _add_card_testing(world: World, tx: dict[str, np.ndarray], rules_on: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Scenario 4: compromised cards make small payments at random terminals, at any hour."""
    added: list[dict[str, np.ndarray]] = []
    for day in range(world.n_days):
        rules = rules_on(day)
        count = _daily_count(rules.testing_cards_per_day * world.customer_share, rng)
        if count == 0:
            continue
        cards = rng.choice(world.n_customers, size=count, replace=False)
        days = np.arange(day, min(day + rules.testing_days, world.n_days))
        per = rng.poisson(rules.testing_payments_per_day, size=(count, len(days)))
        cell = np.repeat(np.arange(count * len(days)), per.ravel())
        n = len(cell)
        when = days[cell % len(days)]
        added.append({
            "customer_id": cards[cell // len(days)], "terminal_id": rng.integers(0, world.n_terminals, n),
            "tx_time_days": when, "tx_time_seconds": when * SECONDS_PER_DAY + rng.integers(1, SECONDS_PER_DAY, n),
            "tx_amount": np.round(rng.uniform(0.5, rules.testing_amount_max, n), 2),
            "tx_fraud": np.ones(n, np.int64), "tx_fraud_scenario": np.full(n, 4, np.int64),
        })
    if not added:
        return tx
    return {key: np.concatenate([tx[key], *(a[key] for a in added)]) for key in tx}


def _scenario_amount(tx: dict[str, np.ndarray], rules: FraudRules, shifted: FraudRules | None, shift: int) -> None:
    threshold = np.where(tx["tx_time_days"] >= shift, (shifted or rules).amount_threshold, rules.amount_threshold)
    hit = (tx["tx_amount"] > threshold) & (tx["tx_fraud_scenario"] == 0)
    tx["tx_fraud"][hit], tx["tx_fraud_scenario"][hit] = 1, 1


def _scenario_terminals(world: World, tx: dict[str, np.ndarray], rules_on: Any, rng: np.random.Generator) -> None:
    """Scenario 2: a (terminal × day) table of compromised terminals, built from each day's draws
    with a difference array, then looked up for every transaction at once."""
    nd = world.n_days
    window = np.zeros((world.n_terminals, nd + 1), dtype=np.int32)
    for day in range(nd):
        rules = rules_on(day)
        count = _daily_count(rules.terminals_per_day * world.terminal_share, rng)
        if count:
            chosen = rng.choice(world.n_terminals, size=count, replace=False)
            np.add.at(window, (chosen, day), 1)
            np.add.at(window, (chosen, min(day + rules.terminal_days, nd)), -1)
    compromised = np.cumsum(window, axis=1)[:, :nd] > 0
    hit = compromised[tx["terminal_id"], tx["tx_time_days"]]
    tx["tx_fraud"][hit], tx["tx_fraud_scenario"][hit] = 1, 2


def _scenario_customers(world: World, tx: dict[str, np.ndarray], rules_on: Any, rng: np.random.Generator) -> None:
    """Scenario 3: each day's compromised customers; a share of their next days' transactions
    (chosen among them together, as the handbook does) get a multiplied amount and are fraud."""
    nd = world.n_days
    order = np.lexsort((tx["tx_time_seconds"], tx["tx_time_days"], tx["customer_id"]))
    key = tx["customer_id"][order] * (nd + 1) + tx["tx_time_days"][order]
    for day in range(nd):
        rules = rules_on(day)
        count = _daily_count(rules.customers_per_day * world.customer_share, rng)
        if count == 0:
            continue
        chosen = rng.choice(world.n_customers, size=count, replace=False)
        last = min(day + rules.customer_days, nd)
        starts = np.searchsorted(key, chosen * (nd + 1) + day, side="left")
        ends = np.searchsorted(key, chosen * (nd + 1) + last, side="left")
        candidates = np.concatenate([order[s:e] for s, e in zip(starts, ends)])
        k = int(len(candidates) * rules.customer_fraud_share)
        if k == 0:
            continue
        hit = rng.choice(candidates, size=k, replace=False)
        tx["tx_amount"][hit] = np.round(tx["tx_amount"][hit] * rules.amount_factor, 2)
        tx["tx_fraud"][hit], tx["tx_fraud_scenario"][hit] = 1, 3


def _finish(world: World, tx: dict[str, np.ndarray]) -> pd.DataFrame:
    order = np.argsort(tx["tx_time_seconds"], kind="stable")
    frame = pd.DataFrame({key: values[order] for key, values in tx.items()})
    frame.insert(0, "transaction_id", np.arange(len(frame), dtype=np.int64))
    start = pd.Timestamp(world.start_date)
    frame.insert(1, "tx_datetime", start + pd.to_timedelta(frame["tx_time_seconds"], unit="s"))
    return frame[[
        "transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount",
        "tx_time_seconds", "tx_time_days", "tx_fraud", "tx_fraud_scenario",
    ]]


def summary(transactions: pd.DataFrame) -> dict[str, Any]:
    """Counts to compare with the handbook's published figures."""
    scenario = transactions["tx_fraud_scenario"].value_counts()
    return {
        "transactions": int(len(transactions)),
        "frauds": int(transactions["tx_fraud"].sum()),
        "fraud_rate": float(transactions["tx_fraud"].mean()),
        **{f"scenario_{s}": int(scenario.get(s, 0)) for s in (1, 2, 3, 4)},
    }
