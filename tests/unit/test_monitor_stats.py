"""nbops.monitoring's statistics against scipy on the raw data: the profile stands in for the
training frame, and the numbers must be the ones Evidently's tests give on raw data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from nbops.core.exceptions import MonitorError
from nbops.monitoring import config as config_mod
from nbops.monitoring import drift
from nbops.monitoring.accumulate import Accumulators
from nbops.monitoring.profile import SAMPLE_ROWS, build_profile, dumps


def frame(rng, n, shift=0.0, cats=(0.5, 0.3, 0.2), p_yes=0.5):
    return pd.DataFrame({
        "num": rng.normal(10 + shift, 2, n).round(3),
        "wide": rng.gamma(2.0, 3.0, n),
        "cat": rng.choice(["x", "y", "z"], n, p=list(cats)),
        "two": rng.choice(["yes", "no"], n, p=[p_yes, 1 - p_yes]),
    })


def accumulate(profile, current, parts=3):
    acc = Accumulators(profile)
    for piece in np.array_split(np.arange(len(current)), parts):
        rows = current.iloc[piece]
        for column in profile["columns"]:
            name = column["name"]
            acc.columns[name].add(rows[name].to_numpy(dtype=float) if column["kind"] == "numeric" else rows[name].tolist())
    return acc


def drift_of(profile, acc, name, config=drift.DriftConfig()):
    column = next(c for c in profile["columns"] if c["name"] == name)
    return drift.column_drift(column, acc.columns[name], config, profile["sample"]["columns"][name])


@pytest.mark.parametrize("current_rows", [300, 5000, 12000])
def test_ks_on_a_small_reference_is_scipys_exactly(current_rows):
    rng = np.random.default_rng(1)
    reference, current = frame(rng, 900), frame(rng, current_rows, shift=0.25)
    profile = build_profile(reference)
    result = drift_of(profile, accumulate(profile, current), "num")
    expected = stats.ks_2samp(reference["num"], current["num"])
    assert result["test"] == "K-S p_value"
    assert result["statistic"] == pytest.approx(expected.statistic, abs=1e-12)
    assert result["score"] == pytest.approx(expected.pvalue, rel=1e-5, abs=1e-12)
    assert result["drifted"] == (expected.pvalue < 0.05)


def test_chi_square_and_z_test_on_a_small_reference_match_scipy():
    rng = np.random.default_rng(2)
    reference, current = frame(rng, 800), frame(rng, 1500, cats=(0.45, 0.3, 0.25), p_yes=0.56)
    profile = build_profile(reference)
    acc = accumulate(profile, current)
    chi = drift_of(profile, acc, "cat")
    keys = ["x", "y", "z"]
    observed = [int((current["cat"] == k).sum()) for k in keys]
    expected = [int((reference["cat"] == k).sum()) * len(current) / len(reference) for k in keys]
    assert chi["test"] == "chi-square p_value"
    assert chi["score"] == pytest.approx(stats.chisquare(observed, expected).pvalue, rel=1e-5)
    z = drift_of(profile, acc, "two")
    p1, p2 = (reference["two"] == "no").mean(), (current["two"] == "no").mean()
    n, m = len(reference), len(current)
    pooled = (p1 * n + p2 * m) / (n + m)
    statistic = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    assert z["test"] == "Z-test p_value"
    assert z["score"] == pytest.approx(2 * stats.norm.sf(abs(statistic)), rel=1e-5)


def test_jensen_shannon_on_a_large_reference_is_scipys():
    rng = np.random.default_rng(3)
    reference, current = frame(rng, 6000), frame(rng, 4000, cats=(0.3, 0.3, 0.4))
    profile = build_profile(reference)
    result = drift_of(profile, accumulate(profile, current), "cat")
    p = [(reference["cat"] == k).mean() for k in "xyz"]
    q = [(current["cat"] == k).mean() for k in "xyz"]
    assert result["test"] == "Jensen-Shannon distance"
    assert result["score"] == pytest.approx(distance.jensenshannon(p, q), rel=1e-5)
    assert result["drifted"]


@pytest.mark.parametrize("column, shift, tolerance", [("num", 0.0, 0.003), ("num", 0.3, 0.003), ("wide", 0.0, 0.003), ("num", 3.0, 1e-9)])
def test_wasserstein_from_percentile_bins_matches_scipy_on_raw_data(column, shift, tolerance):
    rng = np.random.default_rng(4)
    reference, current = frame(rng, 8000), frame(rng, 5000, shift=shift)
    profile = build_profile(reference)
    result = drift_of(profile, accumulate(profile, current), column)
    expected = stats.wasserstein_distance(reference[column], current[column]) / np.std(reference[column])
    assert result["test"] == "Wasserstein distance (normed)"
    # exact wherever the two CDFs do not cross inside a percentile bin (a shift of 1.5 std)
    assert result["score"] == pytest.approx(expected, abs=tolerance, rel=1e-5)
    assert result["drifted"] == (expected >= 0.1)


def test_accumulating_in_parts_equals_one_pass():
    rng = np.random.default_rng(5)
    reference, current = frame(rng, 3000), frame(rng, 2000, shift=0.5)
    profile = build_profile(reference)
    one, many = accumulate(profile, current, parts=1), accumulate(profile, current.iloc[:700], parts=2)
    many.merge(accumulate(profile, current.iloc[700:], parts=3))
    for name in ("num", "wide", "cat", "two"):
        assert drift_of(profile, one, name) == drift_of(profile, many, name)


def test_psi_bands_and_shifted_columns():
    rng = np.random.default_rng(6)
    reference = frame(rng, 5000)
    profile = build_profile(reference)
    stable = drift_of(profile, accumulate(profile, frame(rng, 5000)), "num")
    moved = drift_of(profile, accumulate(profile, frame(rng, 5000, shift=1.5)), "num")
    assert stable["psi_band"] == "stable" and stable["psi"] < 0.1
    assert moved["psi_band"] == "act" and moved["psi"] > 0.25


def test_fresh_samples_of_the_reference_are_rarely_flagged():
    """False positives: reference and current drawn anew from one distribution, each trial.

    KS and the Z-test are two-sample tests: about 5% at p < 0.05. Evidently's chi-square is a
    goodness-of-fit test against the reference's shares taken as exact, so with a small
    reference it flags more often (~20-25% for 800 reference rows against 1000); the distance
    tests used for larger references almost never flag a fresh sample."""
    from collections import Counter

    rng = np.random.default_rng(7)
    for reference_rows, trials in ((800, 100), (8000, 30)):
        flagged: Counter[str] = Counter()
        datasets = 0
        for _ in range(trials):
            profile = build_profile(frame(rng, reference_rows))
            acc = accumulate(profile, frame(rng, 1000), parts=1)
            drifted = {name: drift_of(profile, acc, name)["drifted"] for name in ("num", "wide", "cat", "two")}
            flagged.update(drifted)
            datasets += sum(drifted.values()) >= 2
        if reference_rows <= 1000:
            assert max(flagged["num"], flagged["wide"], flagged["two"]) / trials <= 0.1, flagged
            assert flagged["cat"] / trials <= 0.35, flagged
        else:
            assert sum(flagged.values()) / (4 * trials) <= 0.02, flagged
        assert datasets / trials <= 0.05, (reference_rows, datasets)


def test_profile_is_deterministic_bounded_and_keeps_small_references_whole():
    rng = np.random.default_rng(8)
    big, small = frame(rng, 5000), frame(rng, 600)
    scores = rng.random(5000)
    assert dumps(build_profile(big, scores=scores)) == dumps(build_profile(big.copy(), scores=scores.copy()))
    profile = json.loads(dumps(build_profile(big, scores=scores, score_of="probability of class 1")))
    assert profile["sample"]["rows"] == SAMPLE_ROWS and len(profile["sample"]["scores"]) == SAMPLE_ROWS
    assert profile["scores"]["of"] == "probability of class 1"
    num = profile["columns"][0]
    assert num["mean"] == pytest.approx(big["num"].mean()) and num["std"] == pytest.approx(np.std(big["num"]))
    assert sum(num["counts"]) == 5000 and num["edges"][0] == big["num"].min() and num["edges"][-1] == big["num"].max()
    assert profile["columns"][2]["categories"] == big["cat"].value_counts().to_dict()
    whole = build_profile(small)
    assert sorted(whole["sample"]["columns"]["num"]) == sorted(small["num"].tolist())


def test_thresholds_come_from_params_with_clear_errors():
    config = config_mod.from_mapping({"wasserstein": 0.2, "drift_share": 0.3, "tolerance": 0.01})
    assert config.drift.wasserstein == 0.2 and config.drift.drift_share == 0.3 and config.tolerance == 0.01
    with pytest.raises(MonitorError, match=r"monitor\.wassertein: unknown threshold; valid keys: .*wasserstein"):
        config_mod.from_mapping({"wassertein": 0.2})
    with pytest.raises(MonitorError, match="non-negative number"):
        config_mod.from_mapping({"p_value": "low"})


def test_the_bin_lookup_is_searchsorted_exactly():
    """NumericAccumulator's cell table gives the bins numpy's binary search gives, on edges of many
    shapes (duplicates, heavy tails), at and just beside every edge, and outside the range."""
    from nbops.monitoring.accumulate import NumericAccumulator

    rng = np.random.default_rng(0)
    for trial in range(200):
        reference = [rng.normal(100, 10, 3000), rng.poisson(3, 3000).astype(float), rng.lognormal(0, 2, 3000),
                     rng.uniform(-1, 1, 3000).round(2)][trial % 4]
        edges = np.quantile(reference, np.linspace(0, 1, int(rng.integers(5, 120))))
        if trial % 3:
            edges = np.unique(edges)
        accumulator = NumericAccumulator({"edges": edges.tolist()})
        at = rng.choice(edges, 300)
        x = np.concatenate([rng.choice(reference, 2000), at, np.nextafter(at, np.inf), np.nextafter(at, -np.inf),
                            rng.normal(edges.mean(), edges.std() * 3 + 1, 300)])
        assert (accumulator._bin_index(x) == np.searchsorted(accumulator.edges, x, side="right") - 1).all(), trial
