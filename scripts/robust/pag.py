"""Perceptually aligned gradient (PAG) images for plain and smoothed classifiers.

A PAG image is obtained by targeted large-eps L2 PGD from a start image x0: normalised-gradient
ascent on the log-probability of a target class t, each iterate projected onto
{ ||x - x0||_2 <= eps } and [0, 1] (Santurkar et al. 2019 / MadryLab ``robustness`` conventions).

Both kinds of classifier are seen through one interface, :class:`Scorer`, so a figure compares
columns on equal terms: :class:`PlainScorer` is log softmax(f(x))_t, :class:`SmoothedScorer` is
log G(x)_t for the soft smoothed classifier G(x) = E_delta[softmax f(x + delta)],
delta ~ N(0, sigma^2 I), estimated as in Salman et al. (2019): the log of the softmax averaged over
m noisy copies (not the average of log-softmaxes).

Images are float32 [B, C, H, W] in [0, 1]; eps, step_size and sigma are in [0, 1] pixel units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust.attacks import threat_model


class Scorer(Protocol):
    """What :func:`generate_pag` ascends."""

    def log_prob(self, x: Tensor, target: Tensor) -> Tensor:
        """Log-probability [B] of target int64 [B] at x [B, C, H, W]; differentiable w.r.t. x."""

    def reset(self, x0: Tensor) -> None:
        """Called with each batch of start images before its first step (e.g. draws fixed noise)."""


def _targets(target: Tensor | int, n: int, device: torch.device) -> Tensor:
    """Target classes as int64 [n] on ``device`` (an int is broadcast to every image)."""
    t = torch.as_tensor(target, dtype=torch.long, device=device)
    t = t.expand(n) if t.dim() == 0 else t
    if t.shape != (n,):
        raise ValueError(f"target must be an int or have shape [{n}], got {tuple(t.shape)}")
    return t


def _per_image_noise(x: Tensor, m: int, sigma: float, generator: torch.Generator) -> Tensor:
    """Gaussian noise [B, m, C, H, W], std sigma, float32 on x's device, drawn image after image on
    the generator's device, so that image i's noise does not depend on how images are batched."""
    shape = (m, *x.shape[1:])
    blocks = [
        torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)
        for _ in range(x.shape[0])
    ]
    return (sigma * torch.stack(blocks)).to(x.device)


class PlainScorer:
    """Scorer of a plain classifier: log softmax(model(x))_target, shape [B]."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def log_prob(self, x: Tensor, target: Tensor) -> Tensor:
        """Log-probability [B] of ``target`` [B] at x [B, C, H, W]; differentiable w.r.t. x."""
        return F.log_softmax(self.model(x), dim=1).gather(1, target.view(-1, 1)).squeeze(1)

    def reset(self, x0: Tensor) -> None:
        """Stateless: nothing to do."""


class SmoothedScorer:
    """Scorer of the soft smoothed classifier G(x), with m noise draws per image per step.

    log_prob is logsumexp_i(log_softmax(model(x + delta_i))_t) - log m; the B * m noisy copies
    (not clipped to [0, 1], as in Cohen et al. and Salman et al.) go through the model as one batch.
    fixed_noise=True draws each image's m noise vectors once per :meth:`reset` and reuses them at
    every step (Salman et al.'s attack, a deterministic objective); False draws fresh noise at every
    call (a stochastic gradient of log G). A generator on the images' device avoids a copy.
    """

    def __init__(
        self, model: nn.Module, sigma: float, m: int, fixed_noise: bool, generator: torch.Generator
    ) -> None:
        if sigma < 0 or m < 1:
            raise ValueError(f"need sigma >= 0 and m >= 1, got sigma={sigma}, m={m}")
        self.model, self.sigma, self.m = model, float(sigma), int(m)
        self.fixed_noise, self.generator = bool(fixed_noise), generator
        self.noise: Tensor | None = None  # [B, m, C, H, W] when fixed_noise and drawn

    def reset(self, x0: Tensor) -> None:
        """Start a new batch of images x0 [B, C, H, W]: redraw the fixed noise (if fixed_noise).
        Fresh-noise mode keeps no state, and must not consume the generator here."""
        fixed = self.fixed_noise
        self.noise = _per_image_noise(x0, self.m, self.sigma, self.generator) if fixed else None

    def log_prob(self, x: Tensor, target: Tensor) -> Tensor:
        """MC estimate [B] of log G(x)_target, differentiable w.r.t. x [B, C, H, W]; fixed noise is
        that of the last :meth:`reset` (drawn now if there is none for a batch of this size)."""
        b, m, sigma = x.shape[0], self.m, self.sigma
        if self.fixed_noise and (self.noise is None or self.noise.shape[0] != b):
            self.reset(x)
        noise = self.noise if self.fixed_noise else _per_image_noise(x, m, sigma, self.generator)
        noisy = (x.unsqueeze(1) + noise).reshape(b * m, *x.shape[1:])
        log_p = F.log_softmax(self.model(noisy), dim=1).view(b, m, -1)
        log_p_t = log_p.gather(2, target.view(b, 1, 1).expand(b, m, 1)).squeeze(2)
        return torch.logsumexp(log_p_t, dim=1) - math.log(m)


def generate_pag(
    scorer: Scorer,
    x0: Tensor,
    target: Tensor | int,
    *,
    eps: float,
    steps: int,
    step_size: float,
    batch_size: int | None = None,
    use_best: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """PAG images [B, C, H, W] (detached, in the eps-ball around x0 and [0, 1]): ``steps`` steps
    of ascent on scorer.log_prob(x, target) from x0 [B, C, H, W] (see :class:`robust.attacks.L2`).

    The scorer's model should be in eval mode (not switched here); it gets no parameter gradients.
    target: int64 [B] or one int. batch_size: images optimised together (None: all B; a smoothed
    scorer forwards batch_size * m copies at once); with fresh noise the noise stream is consumed
    step by step, so the result depends on it. use_best: return per image the iterate with the
    highest log_prob seen (as the ``robustness`` library does; with fresh noise judged on a noisy
    estimate), at the cost of one extra forward pass. progress: called with 1 after each step.
    """
    threat = threat_model("l2", eps, step_size)
    x0 = x0.detach()
    t = _targets(target, x0.shape[0], x0.device)
    size = x0.shape[0] if batch_size is None else batch_size
    if steps < 0 or size < 1:
        raise ValueError(f"need steps >= 0 and batch_size >= 1, got {steps}, {batch_size}")

    def ascend(x0: Tensor, target: Tensor) -> Tensor:
        """The PAG images of one batch of start images."""
        scorer.reset(x0)
        x = threat.project(x0, x0)
        best, best_score = x.clone(), torch.full((x.shape[0],), -math.inf, device=x.device)
        for _ in range(steps):
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                score = scorer.log_prob(x, target)
                (grad,) = torch.autograd.grad(score.sum(), x)
            x = x.detach()
            if use_best:  # score belongs to the iterate before this step
                better = score.detach() > best_score
                best[better], best_score[better] = x[better], score.detach()[better]
            x = threat.project(threat.step(x, grad), x0)
            if progress is not None:
                progress(1)
        if not use_best:
            return x
        with torch.no_grad():
            better = scorer.log_prob(x, target) > best_score
        best[better] = x[better]
        return best

    chunks = [ascend(x0[i : i + size], t[i : i + size]) for i in range(0, x0.shape[0], size)]
    return torch.cat(chunks).detach()


@torch.no_grad()
def target_probability(model: nn.Module, x: Tensor, target: Tensor | int) -> Tensor:
    """softmax(model(x))_target, float [B], for x [B, C, H, W] (no gradient)."""
    t = _targets(target, x.shape[0], x.device)
    return F.softmax(model(x), dim=1).gather(1, t.view(-1, 1)).squeeze(1)


@torch.no_grad()
def smoothed_probability(
    model: nn.Module,
    x: Tensor,
    target: Tensor | int,
    sigma: float,
    m: int,
    generator: torch.Generator,
    batch_size: int | None = None,
) -> Tensor:
    """Monte Carlo estimate [B] of G(x)_target over m draws per image (standard error <= 0.5 /
    sqrt(m)), for x [B, C, H, W] and target int64 [B] or one int. The noise is drawn as in
    :class:`SmoothedScorer`, so the estimate does not depend on batch_size, the most noisy copies
    per forward pass (None: all B * m; memory holds at least one image's m * C * H * W floats).
    """
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    t = _targets(target, x.shape[0], x.device)
    per_group = max(1, x.shape[0] if batch_size is None else batch_size // m)
    out = []
    for xg, tg in zip(x.split(per_group), t.split(per_group), strict=True):
        noisy = (xg.unsqueeze(1) + _per_image_noise(xg, m, sigma, generator)).flatten(0, 1)
        step = noisy.shape[0] if batch_size is None else batch_size
        probs = torch.cat([F.softmax(model(part), dim=1) for part in noisy.split(step)])
        out.append(probs.view(len(xg), m, -1).gather(2, tg.view(-1, 1, 1).expand(-1, m, 1)).mean(1))
    return torch.cat(out).squeeze(1)


def pairs(
    labels: Tensor, num_classes: int, count: int, skip: int, seed: int,
    idx: list[int] | None = None, targets: list[int] | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The (start image, target class) pairs of a PAG run, int64 [count] each: test indices 0,
    skip, 2 * skip, ... (or ``idx``) and targets drawn uniformly among the classes other than the
    label, from ``seed`` (or ``targets``). labels: int64 [N] of the test split."""
    if idx:
        chosen = torch.tensor(idx, dtype=torch.long)
        if len(chosen) != count or int(chosen.max()) >= len(labels):
            raise ValueError(f"pag: idx needs {count} indices below {len(labels)}, got {idx}")
    else:
        chosen = torch.arange(0, len(labels), skip)[:count]
        if len(chosen) < count:
            raise ValueError(
                f"pag: only {len(chosen)} test images at pair_skip {skip}, {count} asked"
            )
    if targets:
        if len(targets) != count or max(targets) >= num_classes:
            raise ValueError(f"pag: targets needs {count} classes below {num_classes}")
        return chosen, torch.tensor(targets, dtype=torch.long)
    shift = torch.randint(1, num_classes, (count,), generator=torch.Generator().manual_seed(seed))
    return chosen, (labels[chosen] + shift) % num_classes
