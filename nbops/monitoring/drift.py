"""Drift of one column: Evidently's data-drift defaults, computed against a stored profile.

Which test (Evidently 0.7's default, by the count of non-null reference values and the distinct
values of reference and current together):

    reference ≤ 1000 values   numeric (> 5 distinct)   two-sample Kolmogorov–Smirnov, p < 0.05
                              categorical, or numeric with ≤ 5 distinct:
                                  > 2 categories: chi-square goodness of fit, p < 0.05
                                  ≤ 2: two-proportion Z-test, p < 0.05
    reference > 1000 values   numeric (> 5 distinct)   Wasserstein distance / reference std ≥ 0.1
                              otherwise                Jensen–Shannon distance (natural log) ≥ 0.1

How each is computed without the raw training frame (tests check every one against scipy on the
raw data):

* **KS** only runs on references of at most 1000 values, which the profile's sample keeps
  whole. The current data is reduced to counts at and between the reference's distinct values
  (accumulate.py); both ECDFs are step functions, so the largest gap between them is reached at
  a reference value or just before one, and D is exact. The p-value is scipy's for (D, n, m):
  its exact distribution where scipy's `ks_2samp` would use it (both sizes ≤ 10000), else the
  asymptotic one.
* **Chi-square, Z-test, Jensen–Shannon** need only category (or value) counts, which the profile
  and the accumulator hold exactly: the same numbers as on raw data.
* **Wasserstein-1** is ∫|F_ref − F_cur| dx. The profile cuts the reference at its percentiles and
  keeps each bin's count and sum of values; the accumulator keeps the same for the current data
  over the same bins, plus the count and total distance of values beyond the reference's min
  and max. Within a bin [a, b), ∫ F dx = F(a)(b − a) + (count·b − sum)/n exactly, so the signed
  area between the CDFs is exact per bin and the outer tails are exact; the sum of per-bin
  |areas| equals W1 wherever the CDFs do not cross inside a bin (in practice: to ~1e-4 of the
  reference std). The reference std is the population std (numpy's, as Evidently).
* **PSI** (every column): reference deciles (merged from the percentile bins) plus a bin below
  the reference minimum and one above its maximum; categories plus one for unseen ones;
  empty shares count as 0.0001 (Evidently's convention). Bands: < 0.1 stable, 0.1–0.25
  moderate, ≥ 0.25 act.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .accumulate import CategoricalAccumulator, NumericAccumulator
from .profile import _key

EPSILON = 0.0001  # a share of 0 in PSI (Evidently fills empty bins with it)
KS_EXACT_LIMIT = 10000  # scipy's ks_2samp uses the exact distribution when both sizes are at most this


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds (params.yaml `monitor:` overrides each; see nbops/monitoring/config.py)."""

    small_reference: int = 1000
    p_value: float = 0.05
    wasserstein: float = 0.1
    jensenshannon: float = 0.1
    few_values: int = 5
    psi_moderate: float = 0.1
    psi_act: float = 0.25
    drift_share: float = 0.5


# --- the tests, on counts ------------------------------------------------------------------------


def ks_from_counts(points: Any, reference_values: Any, at_point: Any, before_point: Any) -> tuple[float, float]:
    """(D, p-value) of the two-sample KS test from the reference's values and the current data's
    counts at each distinct reference value and strictly between them."""
    import numpy as np

    ref = np.sort(np.asarray(reference_values, dtype=float))
    n = ref.size
    m = int(at_point.sum() + before_point.sum())
    if n == 0 or m == 0:
        return 0.0, 1.0
    ref_le = np.searchsorted(ref, points, side="right") / n  # F_ref at each point
    ref_lt = np.searchsorted(ref, points, side="left") / n  # F_ref just before it
    cur_lt = (np.cumsum(before_point[:-1]) + np.concatenate(([0], np.cumsum(at_point)[:-1]))) / m
    cur_le = cur_lt + at_point / m
    d = float(max(np.abs(ref_le - cur_le).max(), np.abs(ref_lt - cur_lt).max()))
    return d, ks_p_value(d, n, m)


def ks_p_value(d: float, n: int, m: int) -> float:
    """scipy.stats.ks_2samp's two-sided p-value for statistic d and sizes n, m (method 'auto')."""
    from scipy import stats

    if max(n, m) <= KS_EXACT_LIMIT:
        try:  # scipy's own exact computation (private, stable for years); asymptotic if it moves
            from scipy.stats._stats_py import _attempt_exact_2kssamp

            g = math.gcd(n, m)
            success, _, p = _attempt_exact_2kssamp(n, m, g, d, "two-sided")
            if success:
                return float(min(max(p, 0.0), 1.0))
        except (ImportError, TypeError, ValueError):
            pass
    en = n * m / (n + m)
    return float(min(max(stats.kstwo.sf(d, round(en)), 0.0), 1.0))


def chi_square(reference: Mapping[str, int], current: Mapping[str, int]) -> float:
    """p-value of scipy's chisquare(current counts, reference shares × current size), as
    Evidently's chi-square test (categories of both sides; nulls excluded)."""
    from scipy import stats

    keys = sorted(set(reference) | set(current))
    n = sum(reference.values())
    m = sum(current.values())
    if n == 0 or m == 0:
        return 1.0
    observed = [current.get(k, 0) for k in keys]
    expected = [reference.get(k, 0) * m / n for k in keys]
    if any(e == 0 and o > 0 for o, e in zip(observed, expected)):
        return 0.0  # a category the reference never had: infinitely unlikely under it
    kept = [(o, e) for o, e in zip(observed, expected) if e > 0]
    if len(kept) < 2:
        return 1.0
    statistic = sum((o - e) ** 2 / e for o, e in kept)
    return float(stats.chi2.sf(statistic, len(kept) - 1))


def z_test(reference: Mapping[str, int], current: Mapping[str, int]) -> float:
    """p-value of Evidently's two-proportion Z-test for a column with two values at most."""
    from scipy import stats

    keys = sorted(set(reference) | set(current))
    n = sum(reference.values())
    m = sum(current.values())
    if n == 0 or m == 0 or len(keys) <= 1:
        return 1.0
    key = keys[0]
    p1 = reference.get(key, 0) / n
    p2 = current.get(key, 0) / m
    pooled = (p1 * n + p2 * m) / (n + m)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    if spread == 0:
        return 1.0
    z = (p1 - p2) / spread
    return float(2 * (1 - stats.norm.cdf(abs(z))))


def jensen_shannon(reference: Mapping[str, int], current: Mapping[str, int]) -> float:
    """Jensen–Shannon distance (natural log, scipy's default) between two count tables."""
    keys = sorted(set(reference) | set(current))
    n = sum(reference.values())
    m = sum(current.values())
    if n == 0 or m == 0:
        return 0.0
    p = [reference.get(k, 0) / n for k in keys]
    q = [current.get(k, 0) / m for k in keys]
    divergence = 0.0
    for a, b in zip(p, q):
        mid = (a + b) / 2
        if a > 0:
            divergence += a * math.log(a / mid) / 2
        if b > 0:
            divergence += b * math.log(b / mid) / 2
    return math.sqrt(max(divergence, 0.0))


def wasserstein(reference: Mapping[str, Any], current: NumericAccumulator) -> float:
    """W1 between the reference (percentile bins with counts and sums) and the current data
    (counts and sums over the same bins, and its tails beyond the reference's range)."""
    import numpy as np

    edges = np.asarray(reference["edges"], dtype=float)
    ref_counts = np.asarray(reference["counts"], dtype=float)
    ref_sums = np.asarray(reference["sums"], dtype=float)
    n = ref_counts.sum()
    m = current.count
    if n == 0 or m == 0:
        return 0.0
    tails = (current.below_gap + current.above_gap) / m
    if edges.size < 2:
        return tails
    width = np.diff(edges)
    right = edges[1:]
    ref_before = np.concatenate(([0.0], np.cumsum(ref_counts)[:-1]))
    cur_counts = current.counts.astype(float)
    cur_before = current.below + np.concatenate(([0.0], np.cumsum(cur_counts)[:-1]))
    ref_area = (ref_before * width + ref_counts * right - ref_sums) / n
    cur_area = (cur_before * width + cur_counts * right - current.sums) / m
    return float(np.abs(ref_area - cur_area).sum() + tails)


def psi(expected: Any, actual: Any) -> float:
    """Population stability index of two share vectors; empty shares count as EPSILON."""
    total = 0.0
    for e, a in zip(expected, actual):
        e = max(e, EPSILON)
        a = max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def psi_band(value: float, config: DriftConfig) -> str:
    if value < config.psi_moderate:
        return "stable"
    return "moderate" if value < config.psi_act else "act"


# --- shares for PSI and the charts -----------------------------------------------------------------


def decile_bins(reference: Mapping[str, Any]) -> list[int]:
    """Indices into the percentile edges that cut the reference into (at most) ten bins."""
    import numpy as np

    edges = np.asarray(reference["edges"], dtype=float)
    counts = np.asarray(reference["counts"], dtype=float)
    if edges.size < 2:
        return [0]
    cumulative = np.concatenate(([0.0], np.cumsum(counts))) / max(counts.sum(), 1)
    cuts = sorted({int(np.searchsorted(cumulative, q, side="left")) for q in np.linspace(0.1, 0.9, 9)})
    return [0, *[c for c in cuts if 0 < c < edges.size - 1], edges.size - 1]


def numeric_shares(reference: Mapping[str, Any], current: NumericAccumulator, cuts: list[int]) -> tuple[list[float], list[float], list[str]]:
    """Reference and current shares over: below the reference min, the bins between `cuts`, above its max."""
    import numpy as np

    ref_counts = np.asarray(reference["counts"], dtype=float)
    n = max(ref_counts.sum(), 1)
    m = max(current.count, 1)
    edges = reference["edges"]
    ref_shares, cur_shares, labels = [0.0], [current.below / m], [f"< {_fmt(edges[0])}"]
    for a, b in zip(cuts[:-1], cuts[1:]):
        ref_shares.append(float(ref_counts[a:b].sum()) / n)
        cur_shares.append(float(current.counts[a:b].sum()) / m)
        labels.append(f"{_fmt(edges[a])} – {_fmt(edges[b])}")
    ref_shares.append(0.0)
    cur_shares.append(current.above / m)
    labels.append(f"> {_fmt(edges[-1])}")
    return ref_shares, cur_shares, labels


def _fmt(value: float) -> str:
    return f"{value:.4g}"


# --- one column ------------------------------------------------------------------------------------


def reference_counts(reference: Mapping[str, Any]) -> dict[str, int]:
    """Category (or, for a numeric column with few values, value) counts of the reference."""
    if reference.get("kind") == "categorical":
        counts = dict(reference.get("categories") or {})
        if reference.get("other"):
            counts["(other)"] = int(reference["other"])
        return counts
    return dict(reference.get("values") or {})


def current_counts(reference: Mapping[str, Any], current: Any) -> dict[str, int]:
    if isinstance(current, CategoricalAccumulator):
        if not reference.get("other"):
            return dict(current.counts)
        known = reference.get("categories") or {}
        counts: dict[str, int] = {}
        for key, count in current.counts.items():  # rarer categories the profile lumped together
            name = key if key in known else "(other)"
            counts[name] = counts.get(name, 0) + count
        return counts
    return {_key(v): int(c) for v, c in (current.distinct or {}).items()}


def column_drift(reference: Mapping[str, Any], current: Any, config: DriftConfig, sample: list[Any] | None = None) -> dict[str, Any]:
    """Evidently's default test for one column, its verdict, and PSI with its band."""
    ref_n = int(reference.get("rows", 0)) - int(reference.get("nulls", 0))
    cur_n = current.count
    result: dict[str, Any] = {"column": reference["name"], "kind": reference["kind"], "reference_rows": ref_n, "current_rows": cur_n}
    if cur_n == 0 or ref_n == 0:
        result.update({"test": "none", "score": None, "threshold": None, "drifted": False,
                       "note": "no non-null values in the " + ("current data" if cur_n == 0 else "reference")})
        result.update({"psi": None, "psi_band": None})
        return result
    numeric = reference["kind"] == "numeric"
    counts_ref = reference_counts(reference)
    counts_cur = current_counts(reference, current)
    few = not numeric or (
        reference.get("values") is not None and current.distinct is not None
        and len(set(counts_ref) | set(counts_cur)) <= config.few_values
    )
    if ref_n <= config.small_reference:
        if not few:
            if current.ks_points is None:
                raise ValueError(f"column '{reference['name']}': the profile lacks the reference values KS needs")
            statistic, p = ks_from_counts(current.ks_points, [v for v in (sample or []) if v is not None], current.at_point, current.before_point)
            test, score = "K-S p_value", p
            result["statistic"] = statistic
        elif len(set(counts_ref) | set(counts_cur)) > 2:
            test, score = "chi-square p_value", chi_square(counts_ref, counts_cur)
        else:
            test, score = "Z-test p_value", z_test(counts_ref, counts_cur)
        drifted, threshold = score < config.p_value, config.p_value
    elif not few:
        std = max(float(reference.get("std") or 0.0), 0.001)
        test, score, threshold = "Wasserstein distance (normed)", wasserstein(reference, current) / std, config.wasserstein
        drifted = score >= threshold
    else:
        test, score, threshold = "Jensen-Shannon distance", jensen_shannon(counts_ref, counts_cur), config.jensenshannon
        drifted = score >= threshold
    result.update({"test": test, "score": _r(score), "threshold": threshold, "drifted": bool(drifted)})
    value = column_psi(reference, current, counts_ref, counts_cur)
    result.update({"psi": _r(value), "psi_band": psi_band(value, config)})
    return result


def column_psi(reference: Mapping[str, Any], current: Any, counts_ref: dict[str, int], counts_cur: dict[str, int]) -> float:
    if reference["kind"] == "numeric":
        ref_shares, cur_shares, _ = numeric_shares(reference, current, decile_bins(reference))
        return psi(ref_shares, cur_shares)
    n = max(sum(counts_ref.values()), 1)
    m = max(sum(counts_cur.values()), 1)
    keys = sorted(set(counts_ref) | set(counts_cur))
    return psi([counts_ref.get(k, 0) / n for k in keys], [counts_cur.get(k, 0) / m for k in keys])


def _r(value: float) -> float:
    return float(f"{value:.6g}")
