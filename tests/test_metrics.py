"""robust.metrics on hand-made arrays with exactly known answers."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
import torch
from torch import nn

from robust.metrics import (
    abstention_rate,
    average_certified_radius,
    certified_accuracy,
    format_time,
)

# Five images: two certified correct (radii 0.5 and 1.0), one wrong with a radius, two abstentions.
RADIUS = np.array([0.5, 1.0, 0.8, 0.0, 0.0])
CORRECT = np.array([1, 1, 0, 0, 0])
PREDICT = np.array([3, 7, 2, -1, -1])


def test_certified_accuracy() -> None:
    got = certified_accuracy(RADIUS, CORRECT, [0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    np.testing.assert_array_equal(got, [0.4, 0.4, 0.4, 0.2, 0.2, 0.0])
    assert certified_accuracy([0.0], [1], [0.0]).tolist() == [1.0]  # r = 0 counts radius 0 too
    with pytest.raises(ValueError, match="differ in length"):
        certified_accuracy(RADIUS, CORRECT[:3], [0.0])
    with pytest.raises(ValueError, match="non-empty"):
        certified_accuracy([], [], [0.0])


def test_average_certified_radius_and_abstention() -> None:
    assert average_certified_radius(RADIUS, CORRECT) == pytest.approx(1.5 / 5, abs=1e-15)
    assert abstention_rate(PREDICT) == pytest.approx(0.4, abs=1e-15)
    assert abstention_rate([0, 1]) == 0.0


def test_clean_accuracy_counts_top1_in_batches() -> None:
    from robust.attacks import robust_accuracy

    model = nn.Flatten()  # logits = the image pixels, so the label is the argmax pixel
    x = torch.eye(4).reshape(4, 1, 1, 4)
    y = torch.tensor([0, 1, 3, 3])
    for batch_size in (1, 3, 10):
        kw = {"norm": "l2", "eps": 0.0, "steps": 0, "step_size": 0.0, "batch_size": batch_size}
        assert robust_accuracy(model, x, y, **kw) == 0.75


@pytest.mark.parametrize("seconds", [0.0, 3.25, 59.999999, 3_723.5, 90_061.000001])
def test_format_time_is_str_of_timedelta(seconds: float) -> None:
    assert format_time(seconds) == str(datetime.timedelta(seconds=seconds))


def test_format_time_examples() -> None:
    assert format_time(3.141593) == "0:00:03.141593"
    assert format_time(3600) == "1:00:00"
    with pytest.raises(ValueError):
        format_time(-1.0)
