"""Tests for robust.bootstrap: coverage, determinism, paired differences, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from robust import bootstrap
from robust.bootstrap import (
    bootstrap_means,
    holm,
    key_seed,
    p_value,
    paired_difference,
    percentile_interval,
    summarize_runs,
)


def test_interval_covers_the_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(20231)
    mu, hits, reps = 1.5, 0, 200
    for rep in range(reps):
        sample = rng.normal(mu, 2.0, size=100)
        interval = percentile_interval(sample, b=500, seed=rep)
        hits += interval.low <= mu <= interval.high
    assert 0.90 <= hits / reps <= 0.98


def test_interval_of_a_skewed_share_covers_at_about_the_nominal_rate():
    # A 0/1 judge share with p = 0.3: the typical metric of the table.
    rng = np.random.default_rng(7)
    hits = sum(
        (iv := percentile_interval(rng.random(100) < 0.3, b=500, seed=rep)).low <= 0.3 <= iv.high
        for rep in range(200)
    )
    assert 0.90 <= hits / 200 <= 0.98


def test_interval_is_deterministic_for_a_seed():
    values = np.random.default_rng(0).exponential(size=50)
    a, b = percentile_interval(values, 200, seed=3), percentile_interval(values, 200, seed=3)
    assert a == b
    assert percentile_interval(values, 200, seed=4) != a
    assert a.low <= a.mean <= a.high
    assert a.mean == pytest.approx(values.mean())


def test_result_does_not_depend_on_the_block_size(monkeypatch):
    values = np.arange(40, dtype=float)
    whole = bootstrap_means(values, 30, seed=5)
    monkeypatch.setattr(bootstrap, "_BLOCK_ELEMENTS", 7 * 40)
    assert np.array_equal(bootstrap_means(values, 30, seed=5), whole)


def test_constant_and_single_values_give_zero_width():
    iv = percentile_interval([0.25] * 10, 100, seed=0)
    assert (iv.mean, iv.low, iv.high) == pytest.approx((0.25, 0.25, 0.25))
    assert percentile_interval([2.0], 100, seed=0).as_dict() == {
        "mean": 2.0,
        "low": 2.0,
        "high": 2.0,
    }


def test_paired_difference_uses_the_pairing():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 5, size=200)  # large spread shared by both columns
    other = base + 0.5 + rng.normal(0, 0.1, size=200)
    diff = paired_difference(other, base, 500, seed=0)
    assert diff.mean == pytest.approx(float(np.mean(other - base)))
    assert diff.low > 0.4 and diff.high < 0.6  # unpaired intervals would be ~100 times wider
    assert diff == percentile_interval(other - base, 500, seed=0)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0], 10, 0)
    with pytest.raises(ValueError, match="non-finite"):
        percentile_interval([1.0, float("nan")], 10, 0)
    with pytest.raises(ValueError, match="no values"):
        percentile_interval([], 10, 0)
    with pytest.raises(ValueError, match="resamples"):
        percentile_interval([1.0], 0, 0)
    with pytest.raises(ValueError, match="alpha"):
        percentile_interval([1.0], 10, 0, alpha=1.0)


def test_key_seed_is_stable_and_separates_keys():
    assert key_seed(0, "std", "8.0", "cosine") == key_seed(0, "std", "8.0", "cosine")
    seeds = {key_seed(s, c, m) for s in (0, 1) for c in ("std", "smooth") for m in ("a", "b")}
    assert len(seeds) == 8
    assert all(0 <= s < 2**63 for s in seeds)


def test_summarize_runs_shapes_baseline_and_independence():
    rng = np.random.default_rng(2)
    sweep = {
        c: {e: {"m": rng.random((3, 20)) + shift} for e in ("1.0", "2.0")}
        for c, shift in (("std", 0.0), ("smooth", 1.0))
    }
    per_column, paired = summarize_runs(sweep, "std", "2.0", b=100, seed=0)
    assert set(per_column) == {"std", "smooth"} and set(per_column["std"]) == {"1.0", "2.0"}
    assert set(per_column["std"]["1.0"]["m"]) == {"mean", "low", "high", "seed_sd"}
    run_means = sweep["std"]["1.0"]["m"].mean(1)
    assert per_column["std"]["1.0"]["m"]["seed_sd"] == pytest.approx(np.std(run_means, ddof=1))
    assert list(paired) == ["smooth"]
    expected = np.mean(sweep["smooth"]["2.0"]["m"]) - np.mean(sweep["std"]["2.0"]["m"])
    assert paired["smooth"]["m"]["mean"] == pytest.approx(expected)
    assert paired["smooth"]["m"]["holds"] and paired["smooth"]["m"]["p_holm"] < 0.05
    again, _ = summarize_runs({"std": sweep["std"]}, "std", "2.0", b=100, seed=0)
    assert again["std"] == per_column["std"]  # an interval does not depend on the other columns


def test_one_run_is_the_image_bootstrap():
    values = np.random.default_rng(3).random(30)
    per_column, _ = summarize_runs({"a": {"1": {"m": values[None]}}}, "a", "1", b=200, seed=0)
    got = per_column["a"]["1"]["m"]
    assert got["seed_sd"] is None and got["mean"] == pytest.approx(values.mean())


def test_two_level_intervals_cover_the_recipe_mean():
    """Each training run has its own offset (sd 0.3) around the recipe's mean: an interval over
    the images alone, conditional on the three runs, misses the recipe's mean far more often than
    the two-level one, which covers it at about its nominal rate or above (three runs)."""
    rng = np.random.default_rng(11)
    two_level = images_only = 0
    for rep in range(150):
        runs = rng.normal(0.0, 0.3, size=(3, 1)) + rng.normal(0.0, 1.0, size=(3, 40))
        table = {"a": {"1": {"m": runs}}}
        got = summarize_runs(table, "a", "1", b=300, seed=rep)[0]["a"]["1"]["m"]
        two_level += got["low"] <= 0.0 <= got["high"]
        flat = percentile_interval(runs.mean(0), 300, seed=rep)
        images_only += flat.low <= 0.0 <= flat.high
    assert two_level / 150 >= 0.85 and images_only / 150 < two_level / 150 - 0.15


def test_p_values_and_holm():
    # z = 1.96 standard errors: p = 0.05; the sign does not matter
    resampled = np.random.default_rng(0).normal(0.0, 1.0, 10_000)
    resampled = (resampled - resampled.mean()) / resampled.std(ddof=1)
    assert p_value(1.959964, resampled) == pytest.approx(0.05, abs=1e-6)
    assert p_value(-1.959964, resampled) == pytest.approx(0.05, abs=1e-6)
    assert p_value(10.0, resampled) < 1e-20  # no floor of 2 / (b + 1)
    assert p_value(0.5, np.zeros(5)) == 0.0 and p_value(0.0, np.zeros(5)) == 1.0
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5})
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, made monotone: 0.04, 0.09, 0.09, 0.5
    assert adjusted == pytest.approx({"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5})
    assert holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}
