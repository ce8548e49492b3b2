"""Certification metrics, and the time column of Cohen et al.'s certify / predict logs (a model's
clean and PGD accuracy: ``robust.attacks.robust_accuracy``).

Certified accuracy at radius r is the share of images that CERTIFY classifies correctly with a
radius of at least r; abstentions (predict == -1) are wrong. The time column is
``str(datetime.timedelta)``, e.g. ``0:00:03.141593``.
"""

from __future__ import annotations

import datetime

import numpy as np
from numpy.typing import ArrayLike


def _as_1d(name: str, values: ArrayLike) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    return array


def _radius_correct(radius: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    radius, correct = _as_1d("radius", radius), _as_1d("correct", correct)
    if radius.shape != correct.shape:
        raise ValueError(f"radius and correct differ in length: {radius.size} vs {correct.size}")
    return radius, correct


def certified_accuracy(radius: ArrayLike, correct: ArrayLike, radii: ArrayLike) -> np.ndarray:
    """float64 [R]: per radius r of radii [R], the mean over images of (correct == 1 and
    radius >= r), for radius [N] (pixel units, 0 for abstentions) and correct [N] (1 or 0).
    r = 0 gives the smoothed classifier's clean accuracy."""
    radius, correct = _radius_correct(radius, correct)
    radii = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    hits = (correct == 1)[None, :] & (radius[None, :] >= radii[:, None])
    return hits.mean(axis=1)


def average_certified_radius(radius: ArrayLike, correct: ArrayLike) -> float:
    """Mean over images of radius * correct (wrong and abstained images count as 0)."""
    radius, correct = _radius_correct(radius, correct)
    return float(np.mean(radius.astype(np.float64) * (correct == 1)))


def abstention_rate(predict: ArrayLike) -> float:
    """Share of images where the smoothed classifier abstained (predict == -1)."""
    return float(np.mean(_as_1d("predict", predict) == -1))


def format_time(seconds: float) -> str:
    """Elapsed time as ``str(datetime.timedelta)``: ``H:MM:SS.ffffff`` (no fraction when whole)."""
    if not seconds >= 0:
        raise ValueError(f"elapsed time must be non-negative, got {seconds}")
    return str(datetime.timedelta(seconds=seconds))
