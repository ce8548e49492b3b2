"""Tests for robust.alignment: every metric on constructed cases whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robust import alignment, bootstrap
from robust.alignment import (
    JudgeError,
    check_judges,
    controls,
    cosine,
    high_frequency_share,
    judge_agreement,
    kendall_tau,
    pag_metrics,
    radial_frequency,
    tv_per_norm,
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


def test_reference_correlation_of_drawing_the_prototype():
    x0, protos = rand(5, *SHAPE), rand(10, *SHAPE, seed=3)
    target = torch.arange(5)
    one = torch.ones(5, dtype=torch.float64)
    got = pag_metrics(x0, x0 + 0.1 * protos[target], target, protos, {}, 0.5)
    assert torch.allclose(got["ref_corr"], one)
    erased = pag_metrics(x0, x0 - 0.1 * protos[target], target, protos, {}, 0.5)
    assert torch.allclose(erased["ref_corr"], -one)


def test_cosine_is_a_correlation_of_centred_channels():
    x = rand(3, *SHAPE)
    one = torch.ones(3, dtype=torch.float64)
    assert torch.allclose(cosine(x, 2 * x + 1), one)
    assert torch.allclose(cosine(x, 1 - x), -one)
    assert torch.equal(cosine(x, torch.full_like(x, 0.5)), torch.zeros(3, dtype=torch.float64))


def test_a_constant_shift_toward_the_reference_scores_no_higher_than_noise():
    """The class mean of real data is a blurry colour blob: moving every channel by a constant
    toward it must not count as alignment. The shift scores exactly 0 on every reference metric,
    at most the upper end of the random control's 95% interval, though an uncentred cosine would
    call it well aligned."""
    p, eps = 64, 2.0
    x0 = (0.25 + 0.5 * rand(p, *SHAPE)).double()  # inside [0, 1] beyond the step: no clipping
    refs = blob(6.0).repeat(10, 1, 1, 1) * torch.linspace(0.3, 1.0, 10, dtype=torch.float64).view(
        10, 1, 1, 1
    )
    target = torch.arange(p) % 10
    toward = (refs[target] - x0).mean(dim=(2, 3), keepdim=True).expand_as(x0)
    shifted = x0 + eps * toward / toward.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert torch.allclose((shifted - x0).flatten(1).norm(dim=1), torch.full((p,), eps).double())
    shift = pag_metrics(x0, shifted, target, refs, {}, 0.5)
    noise = controls(x0, target, refs, eps, torch.Generator().manual_seed(0))["random"]
    random = pag_metrics(x0, noise, target, refs, {}, 0.5)
    for name in alignment.REFERENCE_METRICS:
        high = bootstrap.percentile_interval(random[name].numpy(), 1000, 0).high
        assert float(shift[name].abs().max()) < 1e-12 and float(shift[name].mean()) <= high, name
    raw = F.cosine_similarity((shifted - x0).flatten(1), (refs[target] - x0).flatten(1))
    assert float(raw.mean()) > 0.3  # what the uncentred cosine made of the same shift


def test_controls_have_the_norm_of_the_perturbation_and_their_directions():
    x0, refs = 0.25 + 0.5 * rand(8, *SHAPE), rand(10, *SHAPE, seed=5)
    target, eps = torch.arange(8), 0.5
    made = controls(x0, target, refs, eps, torch.Generator().manual_seed(1))
    for name, x in made.items():
        norms = (x - x0.double()).flatten(1).norm(dim=1)
        assert torch.allclose(norms, torch.full((8,), eps, dtype=torch.float64)), name
    step = made["reference"] - x0.double()
    assert torch.allclose(cosine(step, refs[target] - x0), torch.ones(8, dtype=torch.float64))
    again = controls(x0, target, refs, eps, torch.Generator().manual_seed(1))
    assert torch.equal(again["random"], made["random"])
    clipped = controls(x0, target, refs, 100.0, torch.Generator().manual_seed(1))["random"]
    assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 1.0


# --------------------------------------------------------------------------------- frequency
def test_radial_frequency_grid_by_hand():
    # fftfreq(4) = [0, 1/4, -1/2, -1/4] cycles per pixel = [0, 0.5, 1, 0.5] of Nyquist.
    axis = torch.tensor([0.0, 0.5, 1.0, 0.5], dtype=torch.float64)
    expected = torch.sqrt(axis[:, None] ** 2 + axis[None, :] ** 2)
    assert torch.allclose(radial_frequency(4, 4), expected)
    # Bins at or below 0.5: DC and the four at (0, +-1/4), (+-1/4, 0); 11 of 16 lie above.
    assert float((radial_frequency(4, 4) > 0.5).double().mean()) == pytest.approx(11 / 16)


def test_single_frequencies_fall_on_their_side_of_the_cutoff():
    low, high = wave(2), wave(12)  # 2/32 and 12/32 cycles/pixel = 0.125 and 0.75 of Nyquist
    assert float(high_frequency_share(low, 0.5)[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(high_frequency_share(high, 0.5)[0]) == pytest.approx(1.0, abs=1e-12)


def test_noise_high_frequency_share_is_the_share_of_bins_above_the_cutoff():
    """White noise spreads its expected energy equally over the DFT bins."""
    got = high_frequency_share(randn(64, *SHAPE), 0.5)
    expected = float((radial_frequency(32, 32) > 0.5).double().mean())
    assert float(got.mean()) == pytest.approx(expected, abs=0.01)
    # The continuum limit: area of [-1, 1]^2 outside the disc of radius 0.5, over 4.
    assert expected == pytest.approx(1 - math.pi * 0.5**2 / 4, abs=0.01)


def test_smooth_blob_is_low_frequency_and_low_tv():
    """Noise of std s: each of the c (2hw - h - w) neighbour differences has E|diff| =
    2 s / sqrt(pi), and its L2 norm is about s sqrt(c h w)."""
    c, h, w = SHAPE
    noise_tv = 2.0 * c * (2 * h * w - h - w) / math.sqrt(math.pi * c * h * w)
    assert float(high_frequency_share(blob(), 0.5)[0]) < 1e-3
    assert float(tv_per_norm(blob())[0]) < 0.1 * noise_tv
    noisy = tv_per_norm(randn(32, *SHAPE))
    assert float(noisy.mean()) == pytest.approx(noise_tv, rel=0.03)


def test_structure_metrics_ignore_the_scale_of_the_perturbation():
    delta = randn(2, *SHAPE) + blob().float()
    for metric in (lambda d: high_frequency_share(d, 0.5), tv_per_norm):
        assert torch.allclose(metric(delta), metric(7.5 * delta))


def test_zero_perturbation_scores_zero():
    x0, protos = rand(2, *SHAPE), rand(10, *SHAPE, seed=4)
    got = pag_metrics(x0, x0.clone(), torch.tensor([1, 2]), protos, {}, 0.5)
    for name in ("cosine", "ref_corr", "hf_share", "tv_per_norm"):
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


def test_judge_roles_come_from_their_kinds_and_judges_stay_apart():
    models = {"std": "cifar10-std", "smooth": "cifar10-gauss-050"}
    kinds = {"judge-a": "standard", "judge-b": "adversarial", "judge-c": "gaussian"}
    roles = check_judges(kinds, models)
    assert roles == {"standard": "judge-a", "adversarial": "judge-b", "noise": "judge-c"}
    with pytest.raises(
        JudgeError, match="judge 'cifar10-std' is the model under test of column 'std'"
    ):
        check_judges({"judge-a": "standard", "cifar10-std": "adversarial"}, models)
    with pytest.raises(JudgeError, match="share a kind"):
        check_judges({"judge-a": "gaussian", "judge-b": "gaussian"}, models)
    with pytest.raises(JudgeError, match="judge 'judge-a' has kind 'fancy'"):
        check_judges({"judge-a": "fancy"}, models)


def test_metric_specs_cover_every_metric_once():
    specs = alignment.metric_specs(["standard", "noise"])
    names = [s.name for s in specs]
    assert len(set(names)) == len(names) == 8
    judges = {"standard": ColourJudge(), "noise": ColourJudge()}
    x0, x, refs = rand(1, 3, 4, 4), rand(1, 3, 4, 4, seed=1), rand(3, 3, 4, 4, seed=2)
    got = pag_metrics(x0, x, torch.tensor([0]), refs, judges, 0.5)
    assert set(got) == set(names)
    assert {s.better for s in specs} == {"max", "min"}
    assert [s.name for s in specs if not s.shown] == ["judge_standard_prob", "judge_noise_prob"]


def test_kendall_tau_by_hand():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)  # 5 concordant, 1 not
    # tau-b with a tie in b: 4 concordant, 1 discordant, pairs 6, tied in b 1 -> 3 / sqrt(6 * 5)
    assert kendall_tau([1, 2, 3, 4], [1, 1, 3, 2]) == pytest.approx(3 / math.sqrt(30))
    assert math.isnan(kendall_tau([1.0], [2.0])) and math.isnan(kendall_tau([1, 2], [5, 5]))
    with pytest.raises(ValueError, match="same items"):
        kendall_tau([1, 2], [1, 2, 3])
