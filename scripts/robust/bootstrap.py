"""Percentile-bootstrap confidence intervals of a mean over images, and of mean paired differences.

The unit of resampling is the image (the (start image, target) pair): values [n] are resampled
with replacement B times, the mean of each resample is taken, and the interval is the
(alpha/2, 1 - alpha/2) quantiles of those B means (Efron's percentile interval, numpy's default
linear quantile interpolation). A paired difference of two columns on the same pairs is the
interval of the mean of the per-pair differences, so it keeps the pairing (and its smaller spread).

Randomness comes from an explicit seed; :func:`key_seed` derives an independent stream per
(seed, name), so an interval does not depend on which other intervals were computed before it.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# Resamples per block: bounds the [block, n] index array to a few MB for large n.
_BLOCK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class Interval:
    """A sample mean and its confidence interval [low, high]."""

    mean: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        """{"mean", "low", "high"} as plain floats."""
        return asdict(self)


def key_seed(seed: int, *key: str | float) -> int:
    """A 63-bit seed from ``seed`` and a key (e.g. column, eps, metric), stable across runs and
    platforms (CRC-32 of the key's text, mixed by numpy's SeedSequence)."""
    text = "|".join(str(k) for k in key).encode()
    state = np.random.SeedSequence([int(seed), zlib.crc32(text)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _values(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError(f"{what}: no values to bootstrap")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: {int(np.sum(~np.isfinite(x)))} non-finite values")
    return x


def bootstrap_means(values: Sequence[float] | np.ndarray, b: int, seed: int) -> np.ndarray:
    """Means of ``b`` resamples (with replacement, same size as ``values``), float64 [b].

    Deterministic for (values, b, seed); the resample indices are drawn block by block from one
    ``np.random.Generator`` (PCG64), so the result does not depend on the block size.
    """
    x = _values(values, "bootstrap")
    if b < 1:
        raise ValueError(f"the number of bootstrap resamples must be >= 1, got {b}")
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // x.size)
    means = [
        x[rng.integers(0, x.size, size=(min(block, b - i), x.size))].mean(axis=1)
        for i in range(0, b, block)
    ]
    return np.concatenate(means)


def percentile_interval(
    values: Sequence[float] | np.ndarray, b: int, seed: int, alpha: float = 0.05
) -> Interval:
    """Sample mean of ``values`` [n] and its (1 - alpha) percentile-bootstrap interval.

    Args:
        values: one number per image (finite); n >= 1 (n = 1 gives a zero-width interval).
        b: number of resamples; seed: seed of the resampling.
        alpha: 0.05 for a 95% interval.

    Returns:
        Interval(mean, low, high) with low <= high (the mean may lie outside for skewed data).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    x = _values(values, "bootstrap")
    low, high = np.quantile(bootstrap_means(x, b, seed), [alpha / 2, 1 - alpha / 2])
    return Interval(float(x.mean()), float(low), float(high))


def paired_difference(
    values: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    b: int,
    seed: int,
    alpha: float = 0.05,
) -> Interval:
    """Mean of values_i - baseline_i over pairs i and its percentile-bootstrap interval.

    Args:
        values, baseline: [n] each, entry i measured on the same (image, target) pair.

    Raises:
        ValueError: the two do not have the same number of pairs.
    """
    a, c = _values(values, "paired difference"), _values(baseline, "paired difference")
    if a.shape != c.shape:
        raise ValueError(f"paired difference needs equal lengths, got {a.size} and {c.size}")
    return percentile_interval(a - c, b, seed, alpha)


def summarize(
    metrics: Mapping[str, np.ndarray], b: int, seed: int, key: Sequence[str | float] = ()
) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "low", "high"}} for per-image metric arrays, each interval with its own
    stream ``key_seed(seed, *key, metric)``."""
    return {
        name: percentile_interval(vals, b, key_seed(seed, *key, name)).as_dict()
        for name, vals in metrics.items()
    }


def summarize_paired(
    metrics: Mapping[str, np.ndarray],
    baseline: Mapping[str, np.ndarray],
    b: int,
    seed: int,
    key: Sequence[str | float] = (),
) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "low", "high"}} of the paired differences metrics - baseline."""
    return {
        name: paired_difference(vals, baseline[name], b, key_seed(seed, *key, name)).as_dict()
        for name, vals in metrics.items()
    }


def summarize_sweep(
    metrics: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
    baseline: str,
    at: str,
    b: int,
    seed: int,
) -> tuple[dict, dict]:
    """Intervals of a whole sweep and paired differences against a baseline.

    Args:
        metrics: {column: {eps key: {metric: values [n]}}}, every column on the same n pairs.
        baseline: the column the others are compared with; at: the eps key of the comparison.
        b, seed: resamples and seed (each interval has its own stream, see :func:`key_seed`).

    Returns:
        ({column: {eps key: {metric: interval}}}, {column: {metric: interval of column - baseline
        at eps key ``at``}} for every column but the baseline); intervals as dicts.
    """
    per_column = {
        column: {key: summarize(m, b, seed, (column, key)) for key, m in sweep.items()}
        for column, sweep in metrics.items()
    }
    paired = {
        column: summarize_paired(sweep[at], metrics[baseline][at], b, seed, ("paired", column, at))
        for column, sweep in metrics.items()
        if column != baseline
    }
    return per_column, paired
