"""robust.stats against exact rational arithmetic and independent large-n references."""

from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np
import pytest

from robust.stats import binom_test_two_sided, clopper_pearson_lower, norm_ppf

_BITS = 56  # exact references are computed on the dyadic grid m / 2**_BITS


def _exact_tail_at_least(k: int, n: int, m: int) -> int:
    """2**(_BITS*n) * P(Bin(n, m / 2**_BITS) >= k), an exact integer."""
    one = 1 << _BITS
    return sum(math.comb(n, j) * m**j * (one - m) ** (n - j) for j in range(k, n + 1))


def _exact_cp_lower(k: int, n: int, alpha: float) -> float:
    """Bisection on the exact binomial tail polynomial: largest grid p with tail <= alpha."""
    target = Fraction(alpha) * (1 << (_BITS * n))  # alpha is a binary float, so this is exact
    lo, hi = 0, 1 << _BITS
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _exact_tail_at_least(k, n, mid) <= target else (lo, mid)
    return lo / (1 << _BITS)


def _exact_binom_test(k: int, n: int, p: Fraction) -> float:
    """scipy's definition: sum of pmf(j) over j with pmf(j) <= pmf(k) * (1 + 1e-7)."""
    pmf = [math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(n + 1)]
    threshold = pmf[k] * Fraction(1 + 1e-7)
    return float(min(Fraction(1), sum(q for q in pmf if q <= threshold)))


@pytest.mark.parametrize("alpha", [0.001, 0.05, 0.4])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 30])
def test_clopper_pearson_matches_exact_fractions(n: int, alpha: float) -> None:
    for k in range(n + 1):
        expected = _exact_cp_lower(k, n, alpha)
        assert clopper_pearson_lower(k, n, alpha) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_clopper_pearson_edge_cases() -> None:
    assert clopper_pearson_lower(0, 10, 0.01) == 0.0
    assert clopper_pearson_lower(10, 10, 0.01) == pytest.approx(0.01 ** (1 / 10), rel=1e-15)
    assert clopper_pearson_lower(np.int64(5), np.int64(10), 0.01) > 0  # numpy integers accepted
    for bad in [(-1, 5, 0.1), (6, 5, 0.1), (0, 0, 0.1), (1, 5, 0.0), (1, 5, 1.0), (1.5, 5, 0.1)]:
        with pytest.raises((ValueError, TypeError)):
            clopper_pearson_lower(*bad)


def _log_comb(n: int, k: int) -> float:
    """log C(n, k) as a compensated sum of logs (independent of lgamma)."""
    i = np.arange(1, k + 1, dtype=np.float64)
    return math.fsum(np.log((n - k + i) / i))


def _reference_cp_by_tail_sum(k: int, n: int, alpha: float, window: int = 6_000) -> float:
    """Bisection on a direct sum of the binomial upper tail (pmf terms beyond the window are
    negligible for these n, k and alpha: the window spans > 10 standard deviations)."""
    j = np.arange(k, min(n, k + window) + 1, dtype=np.float64)
    log_comb = _log_comb(n, k) + np.concatenate(
        ([0.0], np.cumsum(np.log((n - j[:-1]) / (j[:-1] + 1))))
    )
    lo, hi = 0.0, k / n
    for _ in range(64):
        p = 0.5 * (lo + hi)
        log_terms = log_comb + j * math.log(p) + (n - j) * math.log1p(-p)
        top = log_terms.max()
        log_tail = top + math.log(math.fsum(np.exp(log_terms - top)))
        lo, hi = (p, hi) if log_tail <= math.log(alpha) else (lo, p)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("k", [3, 1_000, 250_000, 500_000, 900_000, 999_000])
def test_clopper_pearson_large_n_matches_direct_tail_sum(k: int) -> None:
    n, alpha = 1_000_000, 0.001
    assert abs(clopper_pearson_lower(k, n, alpha) - _reference_cp_by_tail_sum(k, n, alpha)) < 1e-11


@pytest.mark.parametrize("alpha", [1e-6, 0.001, 0.05])
def test_clopper_pearson_large_n_identities(alpha: float) -> None:
    n = 1_000_000
    # k = 1: P(X >= 1) = 1 - (1 - p)^n = alpha.
    assert clopper_pearson_lower(1, n, alpha) == pytest.approx(
        -math.expm1(math.log1p(-alpha) / n), rel=1e-10
    )
    # k = n - 1: P(X >= n - 1) = p^(n-1) (n - (n-1) p) = alpha, solved by bisection in log form.
    lo, hi = 0.9, 1.0
    for _ in range(100):
        p = 0.5 * (lo + hi)
        f = (n - 1) * math.log(p) + math.log(n - (n - 1) * p) - math.log(alpha)
        lo, hi = (p, hi) if f < 0 else (lo, p)
    assert abs(clopper_pearson_lower(n - 1, n, alpha) - p) < 1e-12
    assert clopper_pearson_lower(n, n, alpha) == pytest.approx(alpha ** (1 / n), rel=1e-15)


def test_clopper_pearson_monotone_and_fast_at_large_n() -> None:
    n, alpha = 1_000_000, 0.001
    ks = sorted({*range(0, n + 1, 10_007), *range(n - 50, n + 1), 1, 2, 499_999, 500_000})
    bounds = [clopper_pearson_lower(k, n, alpha) for k in ks]
    assert all(b1 < b2 for b1, b2 in zip(bounds, bounds[1:], strict=False))
    assert all(b < k / n for b, k in zip(bounds, ks, strict=True) if k > 0)
    start = time.perf_counter()
    clopper_pearson_lower(500_000, n, alpha)
    assert time.perf_counter() - start < 0.1


def test_cohen_maximum_radius_factor() -> None:
    # All 100,000 samples agree at alpha = 0.001: the largest certifiable radius is 3.81 sigma.
    p_a_lower = clopper_pearson_lower(100_000, 100_000, 0.001)
    assert p_a_lower == pytest.approx(0.999931, abs=1e-6)
    assert norm_ppf(p_a_lower) == pytest.approx(3.811, abs=1e-3)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 11, 25])
def test_binom_test_half_matches_exact(n: int) -> None:
    for k in range(n + 1):
        exact = float(
            min(1, 2 * sum(Fraction(math.comb(n, j), 2**n) for j in range(min(k, n - k) + 1)))
        )
        assert binom_test_two_sided(k, n) == pytest.approx(exact, rel=1e-12)
        assert binom_test_two_sided(k, n, 0.5) == pytest.approx(
            _exact_binom_test(k, n, Fraction(1, 2)), rel=1e-12
        )


@pytest.mark.parametrize(("n", "p"), [(9, 0.3), (20, 0.1), (25, 0.75), (30, 0.37)])
def test_binom_test_general_p_matches_exact(n: int, p: float) -> None:
    for k in range(n + 1):
        expected = _exact_binom_test(k, n, Fraction(p))
        assert binom_test_two_sided(k, n, p) == pytest.approx(expected, rel=1e-11)


def test_binom_test_known_values_and_errors() -> None:
    assert binom_test_two_sided(5, 10) == 1.0
    assert binom_test_two_sided(10, 10) == pytest.approx(2 / 1024, rel=1e-14)
    assert binom_test_two_sided(0, 1) == 1.0
    # Reference values from scipy.stats.binomtest (scipy 1.17).
    assert binom_test_two_sided(52_000, 100_000) == pytest.approx(1.1530938666727834e-36, rel=1e-8)
    assert binom_test_two_sided(50_500, 100_000) == pytest.approx(0.0015823598788515154, rel=1e-9)
    assert binom_test_two_sided(60, 100) == pytest.approx(0.05688793364098089, rel=1e-12)
    assert binom_test_two_sided(3, 100, 0.1) == pytest.approx(0.017843766383309492, rel=1e-12)
    assert binom_test_two_sided(970, 1000, 0.95) == pytest.approx(0.0028186552844725356, rel=1e-11)
    with pytest.raises(ValueError, match="p must lie"):
        binom_test_two_sided(1, 5, 1.0)


def test_norm_ppf() -> None:
    assert norm_ppf(0.5) == 0.0
    assert norm_ppf(0.975) == pytest.approx(1.959963984540054, rel=1e-12)
    assert norm_ppf(0.001) == pytest.approx(-3.090232306167813, rel=1e-12)
    with pytest.raises(ValueError):
        norm_ppf(1.0)
