"""Tests for robust.pag: PAG generation for plain and smoothed scorers, the MC estimator."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robust.pag import (
    PlainScorer,
    SmoothedScorer,
    generate_pag,
    smoothed_probability,
    target_probability,
)

K = 4
SHAPE = (3, 8, 8)


def tiny_cnn() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, K),
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return net.eval()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_cnn()


@pytest.fixture(scope="module")
def start(model) -> tuple[torch.Tensor, torch.Tensor]:
    """Five images and, for each, the class it is least likely to be (a hard target)."""
    x = torch.rand((5, *SHAPE), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = model(x).argmin(dim=1)
    return x, target


def _check_feasible(x: torch.Tensor, x0: torch.Tensor, eps: float) -> None:
    assert x.shape == x0.shape and not x.requires_grad
    assert ((x - x0).flatten(1).norm(dim=1) <= eps + 1e-5).all()
    assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.mark.parametrize("use_best", [False, True])
def test_plain_pag_raises_target_log_prob(model, start, use_best):
    x0, target = start
    x = generate_pag(
        PlainScorer(model), x0, target, eps=2.0, steps=10, step_size=0.5, use_best=use_best
    )
    _check_feasible(x, x0, 2.0)
    before, after = target_probability(model, x0, target), target_probability(model, x, target)
    assert (after > before).all() and after.mean() > before.mean() + 0.1
    assert model.training is False
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("fixed_noise", [True, False])
def test_smoothed_pag_raises_smoothed_probability(model, start, fixed_noise):
    x0, target = start
    sigma = 0.25
    scorer = SmoothedScorer(model, sigma, 8, fixed_noise, torch.Generator().manual_seed(1))
    x = generate_pag(scorer, x0, target, eps=2.0, steps=8, step_size=0.5, batch_size=2)
    _check_feasible(x, x0, 2.0)

    def p_smooth(images: torch.Tensor) -> torch.Tensor:
        # Independent generator and m = 2000: standard error <= 0.5 / sqrt(2000) ~ 0.011.
        g = torch.Generator().manual_seed(99)
        return smoothed_probability(model, images, target, sigma, 2000, g, batch_size=4000)

    before, after = p_smooth(x0), p_smooth(x)
    assert (after > before + 0.05).all()
    assert all(p.grad is None for p in model.parameters())


def test_use_best_never_worse_than_last(model, start):
    x0, target = start
    kwargs = {"eps": 3.0, "steps": 6, "step_size": 2.0}  # steps this long overshoot and oscillate
    last = generate_pag(PlainScorer(model), x0, target, **kwargs)
    best = generate_pag(PlainScorer(model), x0, target, use_best=True, **kwargs)
    _check_feasible(best, x0, 3.0)
    p_last, p_best = (
        target_probability(model, last, target),
        target_probability(model, best, target),
    )
    assert (p_best >= p_last - 1e-6).all()


def test_mc_estimator_matches_hand_computation(model):
    x = torch.rand((2, *SHAPE), generator=torch.Generator().manual_seed(2))
    target = torch.tensor([1, 3])
    sigma, m = 0.5, 2
    scorer = SmoothedScorer(model, sigma, m, True, torch.Generator().manual_seed(7))
    x_req = x.clone().requires_grad_(True)
    est = scorer.log_prob(x_req, target)

    # The noise is drawn image after image, m draws each, from the given generator.
    g = torch.Generator().manual_seed(7)
    noise = torch.stack([sigma * torch.randn((m, *SHAPE), generator=g) for _ in range(2)])
    assert torch.equal(scorer.noise, noise)

    x_hand = x.clone().requires_grad_(True)
    hand = []
    for b in range(2):  # log of the average softmax over the m noisy copies (Salman et al.)
        probs = [
            F.softmax(model(x_hand[b : b + 1] + noise[b, i]), 1)[0, target[b]] for i in range(m)
        ]
        hand.append(torch.log(sum(probs) / m))
    hand = torch.stack(hand)
    assert torch.allclose(est, hand, atol=1e-6)
    (g_est,) = torch.autograd.grad(est.sum(), x_req)
    (g_hand,) = torch.autograd.grad(hand.sum(), x_hand)
    assert torch.allclose(g_est, g_hand, atol=1e-6)

    # Not the mean of per-copy log-probabilities (a different, lower quantity by Jensen).
    with torch.no_grad():
        logs = [
            F.log_softmax(model(x + noise[:, i]), 1).gather(1, target[:, None]) for i in range(m)
        ]
        mean_log = torch.cat(logs, 1).mean(1)
    assert (est.detach() > mean_log + 1e-6).all()


def test_fixed_noise_batching_matches_one_at_a_time(model, start):
    x0, target = start

    def run(batch_size: int | None) -> torch.Tensor:
        scorer = SmoothedScorer(model, 0.25, 4, True, torch.Generator().manual_seed(3))
        return generate_pag(
            scorer, x0, target, eps=1.0, steps=4, step_size=0.3, batch_size=batch_size
        )

    one_by_one, all_at_once, pairs = run(1), run(None), run(2)
    assert torch.allclose(one_by_one, all_at_once, atol=1e-5)
    assert torch.allclose(one_by_one, pairs, atol=1e-5)


def test_fixed_noise_is_reused_and_fresh_noise_is_not(model, start):
    x0, target = start
    fixed = SmoothedScorer(model, 0.25, 4, True, torch.Generator().manual_seed(4))
    fresh = SmoothedScorer(model, 0.25, 4, False, torch.Generator().manual_seed(4))
    with torch.no_grad():
        fixed.reset(x0)
        assert torch.equal(fixed.log_prob(x0, target), fixed.log_prob(x0, target))
        fresh.reset(x0)
        assert fresh.noise is None
        assert not torch.equal(fresh.log_prob(x0, target), fresh.log_prob(x0, target))


def test_smoothed_probability(model, start):
    x0, target = start
    g = torch.Generator
    a = smoothed_probability(model, x0, target, 0.25, 64, g().manual_seed(5))
    b = smoothed_probability(model, x0, target, 0.25, 64, g().manual_seed(5), batch_size=100)
    assert a.shape == (5,) and torch.allclose(a, b, atol=1e-6)
    assert ((a >= 0) & (a <= 1)).all()
    # sigma = 0: the smoothed classifier is the base classifier.
    zero = smoothed_probability(model, x0, 2, 0.0, 3, g().manual_seed(5))
    assert torch.allclose(zero, target_probability(model, x0, 2), atol=1e-6)
    # With the same noise the MC probability is exp of the scorer's log-probability.
    scorer = SmoothedScorer(model, 0.25, 64, True, g().manual_seed(5))
    with torch.no_grad():
        assert torch.allclose(scorer.log_prob(x0, target).exp(), a, atol=1e-5)


def test_generate_pag_edge_cases(model, start):
    x0, target = start
    scorer = PlainScorer(model)
    assert torch.equal(generate_pag(scorer, x0, target, eps=1.0, steps=0, step_size=0.1), x0)
    by_int = generate_pag(scorer, x0, 2, eps=1.0, steps=2, step_size=0.3)
    by_tensor = generate_pag(scorer, x0, torch.full((5,), 2), eps=1.0, steps=2, step_size=0.3)
    assert torch.equal(by_int, by_tensor)
    with pytest.raises(ValueError, match="target"):
        generate_pag(scorer, x0, target[:2], eps=1.0, steps=1, step_size=0.1)
    with pytest.raises(ValueError, match="eps"):
        generate_pag(scorer, x0, target, eps=-1.0, steps=1, step_size=0.1)
    with torch.no_grad():
        assert math.isfinite(float(scorer.log_prob(x0, target).sum()))
