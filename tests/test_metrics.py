"""robust.metrics on hand-made arrays and logs with exactly known answers."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from robust.metrics import (
    abstention_rate,
    accuracy,
    average_certified_radius,
    certified_accuracy,
    format_time,
    parse_time,
    read_certify_tsv,
    read_predict_tsv,
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


def test_accuracy_counts_top1_in_batches() -> None:
    model = nn.Flatten()  # logits = the image pixels, so the label is the argmax pixel
    x = torch.eye(4).reshape(4, 1, 1, 4)
    y = torch.tensor([0, 1, 3, 3])
    for batch_size in (1, 3, 10):
        assert accuracy(model, x, y, batch_size) == 0.75
    with pytest.raises(ValueError):
        accuracy(model, x, y[:2], 2)


@pytest.mark.parametrize("seconds", [0.0, 3.25, 59.999999, 3_723.5, 90_061.000001])
def test_format_and_parse_time_round_trip(seconds: float) -> None:
    text = format_time(seconds)
    assert text == str(datetime.timedelta(seconds=seconds))
    assert parse_time(text) == pytest.approx(seconds, abs=1e-6)


def test_format_time_examples() -> None:
    assert format_time(3.141593) == "0:00:03.141593"
    assert format_time(3600) == "1:00:00"
    assert parse_time("1 day, 2:03:04.5") == 93_784.5
    with pytest.raises(ValueError):
        parse_time("3.2s")


def test_read_certify_tsv(tmp_path: Path) -> None:
    path = tmp_path / "certify.tsv"
    path.write_text(
        "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
        "0\t3\t3\t0.457\t1\t0:00:03.141593\n"
        "20\t8\t-1\t0.0\t0\t0:00:02\n"
        "40\t1\t5\t0.12\t0\t1:02:03.5\n"
    )
    log = read_certify_tsv(path)
    assert list(log) == ["idx", "label", "predict", "radius", "correct", "time"]
    np.testing.assert_array_equal(log["idx"], [0, 20, 40])
    np.testing.assert_array_equal(log["predict"], [3, -1, 5])
    np.testing.assert_array_equal(log["radius"], [0.457, 0.0, 0.12])
    np.testing.assert_array_equal(log["correct"], [1, 0, 0])
    np.testing.assert_allclose(log["time"], [3.141593, 2.0, 3723.5])
    assert log["idx"].dtype == np.int64 and log["radius"].dtype == np.float64
    assert abstention_rate(log["predict"]) == pytest.approx(1 / 3)


def test_read_predict_tsv_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "predict.tsv"
    path.write_text("idx\tlabel\tpredict\tcorrect\ttime\n5\t2\t2\t1\t0:00:00.5\n")
    log = read_predict_tsv(path)
    assert log["correct"].tolist() == [1] and log["time"].tolist() == [0.5]
    with pytest.raises(ValueError, match="expected header"):
        read_certify_tsv(path)
    with pytest.raises(FileNotFoundError):
        read_predict_tsv(tmp_path / "missing.tsv")
    path.write_text("idx\tlabel\tpredict\tcorrect\ttime\n5\t2\tx\t1\t0:00:01\n")
    with pytest.raises(ValueError, match="column 'predict'"):
        read_predict_tsv(path)
    path.write_text("idx\tlabel\tpredict\tcorrect\ttime\n")
    assert read_predict_tsv(path)["idx"].shape == (0,)
