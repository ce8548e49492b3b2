"""Tests for robust.attacks: PGD feasibility, effect, side effects, determinism, robust accuracy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robust.attacks import THREAT_MODELS, pgd, robust_accuracy

K = 4
SHAPE = (3, 8, 8)


def _init(model: nn.Module, seed: int) -> nn.Module:
    """Re-draw every parameter from an explicit generator so tests do not touch global RNG."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model


def tiny_cnn() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, K),
    )
    return _init(net, 1).eval()


def linear() -> nn.Module:
    return _init(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, K)), 2).eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand((6, *SHAPE), generator=g)
    x[0] = 0.0  # images on the box boundary exercise the [0, 1] clamp
    x[1] = 1.0
    y = torch.randint(0, K, (6,), generator=g)
    return x, y


def _dist(a: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    d = (a - b).flatten(1)
    return d.norm(dim=1) if norm == "l2" else d.abs().amax(dim=1)


@pytest.mark.parametrize("norm,eps,step", [("l2", 0.5, 0.2), ("linf", 0.05, 0.02)])
@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_feasible_and_effective(batch, norm, eps, step, targeted, random_start):
    x, y = batch
    model = linear()
    g = torch.Generator().manual_seed(3)
    x_adv = pgd(
        model, x, y, norm=norm, eps=eps, steps=8, step_size=step, targeted=targeted,
        random_start=random_start, generator=g,
    )  # fmt: skip
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (_dist(x_adv, x, norm) <= eps + 1e-5).all()
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    with torch.no_grad():
        before = F.cross_entropy(model(x), y, reduction="none")
        after = F.cross_entropy(model(x_adv), y, reduction="none")
    if targeted:  # y are targets: their CE goes down, i.e. their log-probability goes up
        assert after.mean() < before.mean() - 1e-3
    else:
        assert after.mean() > before.mean() + 1e-3


@pytest.mark.parametrize("norm", list(THREAT_MODELS))
@pytest.mark.parametrize("training", [False, True])
def test_pgd_no_side_effects(batch, norm, training):
    x, y = batch
    model = tiny_cnn().train(training)
    with torch.no_grad():  # the attack must still work inside a no_grad caller
        x_adv = pgd(model, x, y, norm=norm, eps=0.1, steps=2, step_size=0.05)
    assert model.training is training
    assert all(p.grad is None for p in model.parameters())
    assert not x_adv.requires_grad and x_adv.grad_fn is None


@pytest.mark.parametrize("norm", list(THREAT_MODELS))
def test_pgd_deterministic_for_seed(batch, norm):
    x, y = batch
    model = linear()

    def run(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return pgd(
            model, x, y, norm=norm, eps=0.1, steps=2, step_size=0.05, random_start=True,
            generator=g,
        )  # fmt: skip

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_l2_random_start_uniform_in_ball():
    # Away from the box boundary the start is uniform in the ball: E||delta|| = eps * d / (d + 1).
    eps, x0 = 0.2, torch.full((400, 3, 4, 4), 0.5)
    start = THREAT_MODELS["l2"](eps, 0.0).random_start(x0, torch.Generator().manual_seed(0))
    r = (start - x0).flatten(1).norm(dim=1)
    assert (r <= eps + 1e-6).all()
    assert abs(r.mean().item() - eps * 48 / 49) < 0.01
    directions = (start - x0).flatten(1) / r[:, None]
    assert directions.mean(0).abs().max() < 0.2  # no preferred direction


def test_l2_step_guards_zero_gradient():
    l2 = THREAT_MODELS["l2"](1.0, 0.5)
    x = torch.full((2, *SHAPE), 0.5)
    grad = torch.zeros_like(x)
    grad[1, 0, 0, 0] = 3.0
    stepped = l2.step(x, grad)
    assert torch.equal(stepped[0], x[0])
    assert torch.allclose((stepped[1] - x[1]).norm(), torch.tensor(0.5))


def test_robust_accuracy(batch):
    x, y = batch
    model = linear()
    y = model(x).argmax(1).detach()  # all correct when clean
    y[0] = (y[0] + 1) % K  # except one
    clean = robust_accuracy(model, x, y, norm="l2", eps=0.0, steps=5, step_size=0.1, batch_size=4)
    assert clean == pytest.approx(5 / 6)
    kwargs = {"steps": 10, "batch_size": 4}
    robust = robust_accuracy(model, x, y, norm="l2", eps=2.0, step_size=0.5, **kwargs)
    assert robust <= clean and robust < 5 / 6
    assert robust_accuracy(model, x, y, norm="linf", eps=0.03, step_size=0.01, **kwargs) <= clean


def test_errors(batch):
    x, y = batch
    model = linear()
    with pytest.raises(ValueError, match="unknown norm 'l3'; valid: l2, linf"):
        pgd(model, x, y, norm="l3", eps=0.1, steps=1, step_size=0.1)
    with pytest.raises(ValueError, match="Generator"):
        pgd(model, x, y, norm="l2", eps=0.1, steps=1, step_size=0.1, random_start=True)
    with pytest.raises(ValueError, match="labels"):
        pgd(model, x, y[:2], norm="l2", eps=0.1, steps=1, step_size=0.1)
