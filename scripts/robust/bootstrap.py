"""Percentile-bootstrap intervals of means over training runs and images, paired differences
between columns, and Holm's multiplicity correction.

A column's values form a table [R, P]: R training runs (seeds) by P images shared by every column.
A resample draws P images with replacement, shared by the columns of a comparison (so differences
stay paired), and, per column, R runs: a two-level bootstrap (with R = 1, conditional on the
trained weights). :func:`key_seed` gives each (seed, name) its own stream, so an interval does
not depend on which others were computed.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Hashable, Mapping, Sequence
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


def _table(values: Sequence | np.ndarray, what: str) -> np.ndarray:
    """float64 [R, P] (a 1-D input is one run), finite, non-empty."""
    x = np.asarray(values, dtype=np.float64)
    x = x.reshape(1, -1) if x.ndim <= 1 else x
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"{what}: no values to bootstrap (shape {x.shape})")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: {int(np.sum(~np.isfinite(x)))} non-finite values")
    return x


def draws(n: int, b: int, seed: int) -> np.ndarray:
    """int64 [b, n]: b resamples of n indices drawn with replacement, block by block from one PCG64
    generator (the result does not depend on the block size)."""
    if b < 1:
        raise ValueError(f"the number of bootstrap resamples must be >= 1, got {b}")
    rng, block = np.random.default_rng(seed), max(1, _BLOCK_ELEMENTS // n)
    return np.concatenate(
        [rng.integers(0, n, size=(min(block, b - i), n)) for i in range(0, b, block)]
    )


def resampled_means(values: np.ndarray, images: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """float64 [b]: the mean of values [R, P] over runs[k] [R] x images[k] [P], per resample k
    (computed in blocks of resamples to bound memory)."""
    block = max(1, _BLOCK_ELEMENTS // values.size)
    means = []
    for i in range(0, len(images), block):
        picked = values[runs[i : i + block]]  # [k, R, P]
        index = np.broadcast_to(images[i : i + block, None, :], picked.shape)
        means.append(np.take_along_axis(picked, index, axis=2).mean(axis=(1, 2)))
    return np.concatenate(means)


def bootstrap_means(values: Sequence[float] | np.ndarray, b: int, seed: int) -> np.ndarray:
    """Means of ``b`` image resamples of one run's values [P], float64 [b] (deterministic)."""
    x = _table(values, "bootstrap")
    return resampled_means(x, draws(x.shape[1], b, seed), draws(1, b, 0))


def _interval(mean: float, means: np.ndarray, alpha: float) -> Interval:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(mean), float(low), float(high))


def percentile_interval(
    values: Sequence[float] | np.ndarray, b: int, seed: int, alpha: float = 0.05
) -> Interval:
    """Sample mean of one run's values [P] and its (1 - alpha) percentile image-bootstrap interval
    (n = 1 gives a zero-width interval; the mean may lie outside for skewed data)."""
    x = _table(values, "bootstrap")
    return _interval(x.mean(), bootstrap_means(x, b, seed), alpha)


def paired_difference(
    values: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    b: int,
    seed: int,
    alpha: float = 0.05,
) -> Interval:
    """Mean of values_i - baseline_i over pairs i (one run each) and its percentile interval."""
    a, c = _table(values, "paired difference"), _table(baseline, "paired difference")
    if a.shape != c.shape:
        raise ValueError(f"paired difference needs equal lengths, got {a.size} and {c.size}")
    return percentile_interval(a - c, b, seed, alpha)


def p_value(observed: float, differences: np.ndarray) -> float:
    """Two-sided p-value of "no difference" for an observed mean difference, from the standard
    error of its resampled values [b] (normal approximation, which has no floor of 2 / (b + 1)
    as a count of resamples would, so a Holm-corrected family of 50 can still reject at b = 1000).
    A zero standard error gives 0 for a non-zero difference, else 1."""
    se = float(np.std(differences, ddof=1)) if len(differences) > 1 else 0.0
    if se == 0.0:
        return 0.0 if observed != 0 else 1.0
    return math.erfc(abs(observed) / se / math.sqrt(2))


def holm(p_values: Mapping[Hashable, float]) -> dict[Hashable, float]:
    """Holm-adjusted p-values of a family: the k-th smallest p times (m - k + 1), made monotone,
    at most 1. A hypothesis is rejected at family-wise level alpha when its adjusted p <= alpha."""
    order = sorted(p_values, key=p_values.__getitem__)
    scaled = (min(1.0, (len(order) - k) * p_values[key]) for k, key in enumerate(order))
    return dict(zip(order, itertools.accumulate(scaled, max), strict=True))


def summarize_runs(
    metrics: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
    baseline: str,
    at: str,
    b: int,
    seed: int,
    alpha: float = 0.05,
) -> tuple[dict, dict]:
    """Two-level intervals of a sweep, and paired differences against a baseline column.

    metrics: {column: {eps key: {metric: values [R, P]}}}, every column on the same P pairs (R may
    differ). The image draws of an eps key are shared by every column and metric.

    Returns ({column: {eps key: {metric: {"mean", "low", "high", "seed_sd"}}}}, seed_sd the SD of
    the run means, None for one run; {column: {metric: {"mean", "low", "high", "p", "p_holm",
    "holds"}}} of column - baseline at eps key ``at``, Holm-corrected over all columns but the
    baseline, holds = p_holm <= alpha).
    """
    tables = {c: {e: {m: _table(v, c) for m, v in s.items()} for e, s in sweep.items()}
              for c, sweep in metrics.items()}  # fmt: skip
    images: dict[str, np.ndarray] = {}  # eps key -> image draws [b, P]
    runs: dict[str, np.ndarray] = {}  # column -> run draws [b, R]
    per_column: dict = {c: {} for c in tables}
    for column, sweep in tables.items():
        for key, values in sweep.items():
            n_runs, n_pairs = next(iter(values.values())).shape
            images.setdefault(key, draws(n_pairs, b, key_seed(seed, "images", key)))
            runs.setdefault(column, draws(n_runs, b, key_seed(seed, "runs", column)))
            per_column[column][key] = {
                name: _interval(v.mean(), resampled_means(v, images[key], runs[column]), alpha)
                .as_dict() | {"seed_sd": float(v.mean(1).std(ddof=1)) if len(v) > 1 else None}
                for name, v in values.items()
            }  # fmt: skip
    paired: dict = {c: {} for c in tables if c != baseline}
    p_values = {}
    base = tables[baseline][at]
    for column in paired:
        for name, v in tables[column][at].items():
            diffs = resampled_means(v, images[at], runs[column]) - resampled_means(
                base[name], images[at], runs[baseline]
            )
            stat = _interval(v.mean() - base[name].mean(), diffs, alpha).as_dict()
            p_values[column, name] = stat["p"] = p_value(stat["mean"], diffs)
            paired[column][name] = stat
    for (column, name), adjusted in holm(p_values).items():
        paired[column][name] |= {"p_holm": adjusted, "holds": adjusted <= alpha}
    return per_column, paired
