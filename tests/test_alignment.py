"""Tests for robust.alignment: every metric on constructed cases whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robust import alignment
from robust.alignment import (
    JudgeError,
    check_judges,
    cosine,
    high_frequency_share,
    judge_agreement,
    pag_metrics,
    pearson,
    radial_frequency,
    tv_per_norm,
    white_noise_high_frequency_share,
    white_noise_tv_per_norm,
)

SHAPE = (3, 32, 32)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def blob(std: float = 4.0, size: int = 32) -> torch.Tensor:
    """A centred Gaussian bump [1, 3, size, size] of width ``std`` pixels."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * std**2))
    return g.expand(1, 3, size, size).clone()


def wave(k: int, size: int = 32) -> torch.Tensor:
    """A horizontal cosine with k cycles across the image, [1, 1, size, size]."""
    x = torch.arange(size, dtype=torch.float64)
    return torch.cos(2 * math.pi * k * x / size).expand(1, 1, size, size).clone()


# ------------------------------------------------------------------------ ground-truth alignment
def test_perturbation_along_the_prototype_direction_has_cosine_one():
    x0, protos = rand(4, *SHAPE), rand(10, *SHAPE, seed=1)
    target = torch.tensor([3, 0, 9, 3])
    direction = protos[target] - x0
    for scale in (0.01, 0.3, 1.0):
        got = pag_metrics(x0, x0 + scale * direction, target, protos, {}, 0.5)
        assert torch.allclose(got["cosine"], torch.ones(4, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(cosine(-direction, direction), -torch.ones(4, dtype=torch.float64))


def test_white_noise_has_cosine_near_zero():
    delta, direction = randn(64, *SHAPE), rand(64, *SHAPE, seed=2) - 0.5
    got = cosine(delta, direction)
    d = math.prod(SHAPE)
    assert got.abs().max() < 5 / math.sqrt(d)  # std of the cosine of random directions: 1/sqrt(d)
    assert abs(float(got.mean())) < 3 / math.sqrt(d * 64)


def test_correlation_gain_of_reaching_the_prototype():
    x0, protos = rand(5, *SHAPE), rand(10, *SHAPE, seed=3)
    target = torch.arange(5)
    got = pag_metrics(x0, protos[target], target, protos, {}, 0.5)
    assert torch.allclose(got["corr_gain"], 1 - pearson(x0, protos[target]), atol=1e-9)
    halfway = pag_metrics(x0, 0.5 * (x0 + protos[target]), target, protos, {}, 0.5)
    assert (halfway["corr_gain"] > 0).all() and (halfway["corr_gain"] < got["corr_gain"]).all()


def test_pearson_known_values_and_constant_image():
    x = rand(3, *SHAPE)
    one = torch.ones(3, dtype=torch.float64)
    assert torch.allclose(pearson(x, 2 * x + 1), one)
    assert torch.allclose(pearson(x, 1 - x), -one)
    assert torch.equal(pearson(x, torch.full_like(x, 0.5)), torch.zeros(3, dtype=torch.float64))


# --------------------------------------------------------------------------------- frequency
def test_radial_frequency_grid_by_hand():
    # fftfreq(4) = [0, 1/4, -1/2, -1/4] cycles per pixel = [0, 0.5, 1, 0.5] of Nyquist.
    axis = torch.tensor([0.0, 0.5, 1.0, 0.5], dtype=torch.float64)
    expected = torch.sqrt(axis[:, None] ** 2 + axis[None, :] ** 2)
    assert torch.allclose(radial_frequency(4, 4), expected)
    # Bins at or below 0.5: DC and the four at (0, +-1/4), (+-1/4, 0); 11 of 16 lie above.
    assert white_noise_high_frequency_share(4, 4, 0.5) == pytest.approx(11 / 16)


def test_single_frequencies_fall_on_their_side_of_the_cutoff():
    low, high = wave(2), wave(12)  # 2/32 and 12/32 cycles/pixel = 0.125 and 0.75 of Nyquist
    assert float(high_frequency_share(low, 0.5)[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(high_frequency_share(high, 0.5)[0]) == pytest.approx(1.0, abs=1e-12)


def test_white_noise_high_frequency_share_matches_the_share_of_bins():
    got = high_frequency_share(randn(64, *SHAPE), 0.5)
    expected = white_noise_high_frequency_share(32, 32, 0.5)
    assert float(got.mean()) == pytest.approx(expected, abs=0.01)
    # The continuum limit: area of [-1, 1]^2 outside the disc of radius 0.5, over 4.
    assert expected == pytest.approx(1 - math.pi * 0.5**2 / 4, abs=0.01)


def test_smooth_blob_is_low_frequency_and_low_tv():
    b = blob()
    noise_tv = white_noise_tv_per_norm(*SHAPE)
    assert float(high_frequency_share(b, 0.5)[0]) < 1e-3
    assert float(tv_per_norm(b)[0]) < 0.1 * noise_tv
    noisy = tv_per_norm(randn(32, *SHAPE))
    assert float(noisy.mean()) == pytest.approx(noise_tv, rel=0.03)


def test_structure_metrics_ignore_the_scale_of_the_perturbation():
    delta = randn(2, *SHAPE) + blob().float()
    for metric in (lambda d: high_frequency_share(d, 0.5), tv_per_norm):
        assert torch.allclose(metric(delta), metric(7.5 * delta))


def test_zero_perturbation_scores_zero():
    x0, protos = rand(2, *SHAPE), rand(10, *SHAPE, seed=4)
    got = pag_metrics(x0, x0.clone(), torch.tensor([1, 2]), protos, {}, 0.5)
    for name in ("cosine", "corr_gain", "hf_share", "tv_per_norm"):
        assert torch.equal(got[name], torch.zeros(2, dtype=torch.float64)), name


def test_bad_cutoff_and_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="cutoff"):
        high_frequency_share(randn(1, *SHAPE), 1.5)
    with pytest.raises(ValueError, match="do not fit"):
        pag_metrics(
            rand(2, *SHAPE), rand(2, *SHAPE), torch.tensor([0, 10]), rand(10, *SHAPE), {}, 0.5
        )


# ------------------------------------------------------------------------------------ judges
class ColourJudge(torch.nn.Module):
    """Hand-made judge: class c's logit is 10 times the mean of channel c."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * x.mean((2, 3))


def test_judge_agreement_on_a_hand_made_judge():
    x = torch.zeros(3, 3, 4, 4)
    x[0, 0], x[1, 1], x[2, 2] = 1.0, 1.0, 1.0  # red, green, blue
    target = torch.tensor([0, 1, 0])
    share, prob = judge_agreement(ColourJudge(), x, target, batch_size=2)
    assert share.tolist() == [1.0, 1.0, 0.0]
    top, other = math.exp(10) / (math.exp(10) + 2), 1 / (math.exp(10) + 2)
    assert prob.tolist() == pytest.approx([top, top, other])
    got = pag_metrics(x, x, target, torch.rand(3, 3, 4, 4), {"std": ColourJudge()}, 0.5)
    assert torch.equal(got["judge_std_share"], share) and torch.equal(got["judge_std_prob"], prob)


def test_judge_agreement_matches_softmax_for_any_batch_size():
    judge = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 5)).eval()
    x, target = rand(7, 3, 4, 4), torch.tensor([0, 1, 2, 3, 4, 0, 1])
    probs = F.softmax(judge(x).double(), dim=1)
    for batch in (1, 3, 7):
        share, prob = judge_agreement(judge, x, target, batch)
        assert torch.allclose(prob, probs[torch.arange(7), target])
        assert torch.equal(share, (probs.argmax(1) == target).double())


def test_a_judge_equal_to_a_model_under_test_is_an_error():
    models = {"std": "cifar10-std", "smooth": "cifar10-gauss-050"}
    check_judges(["judge-a", "judge-b"], ["standard", "robust"], models)
    with pytest.raises(
        JudgeError, match="judge 'cifar10-std' is the model under test of column 'std'"
    ):
        check_judges(["judge-a", "cifar10-std"], ["standard", "robust"], models)
    with pytest.raises(JudgeError, match="one role each"):
        check_judges(["judge-a"], ["standard", "robust"], models)
    with pytest.raises(JudgeError, match="distinct"):
        check_judges(["judge-a", "judge-b"], ["standard", "standard"], models)


def test_metric_specs_cover_every_metric_once():
    specs = alignment.metric_specs(["standard", "robust"])
    names = [s.name for s in specs]
    assert len(set(names)) == len(names) == 8
    judges = {"standard": ColourJudge(), "robust": ColourJudge()}
    x0, x, refs = rand(1, 3, 4, 4), rand(1, 3, 4, 4, seed=1), rand(3, 3, 4, 4, seed=2)
    got = pag_metrics(x0, x, torch.tensor([0]), refs, judges, 0.5)
    assert set(got) == set(names)
    assert {s.better for s in specs} == {"max", "min"}
