"""Projected gradient descent (PGD) under L2 and Linf threat models.

Each threat model has ``random_start``, ``step`` and ``project``, following Madry et al. (2018)
and the MadryLab ``robustness`` library's conventions. Images are float [B, C, H, W] in [0, 1];
eps and step sizes are in the same pixel units. Every tensor follows the input ``x``'s device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Smallest per-example gradient norm we divide by; a zero gradient then gives a zero step.
_TINY = 1e-12


def _per_example_norm(v: Tensor) -> Tensor:
    """L2 norm of each example, shaped [B, 1, ..., 1] so it broadcasts against v."""
    return v.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (v.dim() - 1)))


def _noise(
    draw: Callable, shape: tuple[int, ...], generator: torch.Generator, like: Tensor
) -> Tensor:
    """float32 ``draw`` (torch.randn/rand) on the generator's device, then moved to ``like``'s
    device and dtype: a seed's stream is the same whatever device x is on."""
    z = draw(shape, generator=generator, device=generator.device, dtype=torch.float32)
    return z.to(device=like.device, dtype=like.dtype)


class _ThreatModel:
    """Radius ``eps`` and PGD step length ``step_size``, in [0, 1] pixel units."""

    def __init__(self, eps: float, step_size: float) -> None:
        self.eps = float(eps)
        self.step_size = float(step_size)


class L2(_ThreatModel):
    """S(x0) = { x : ||x - x0||_2 <= eps  and  0 <= x <= 1 }, the norm taken per example."""

    def step(self, x: Tensor, grad: Tensor) -> Tensor:
        """x [B,...] + step_size * grad / ||grad||_2 per example (zero gradient: zero step)."""
        return x + self.step_size * grad / _per_example_norm(grad).clamp_min(_TINY)

    def project(self, x: Tensor, x0: Tensor) -> Tensor:
        """Map x [B,...] into S(x0): shrink x - x0 to norm <= eps, then clamp to [0, 1]. Clamping
        only moves each coordinate towards x0's (in-range) value, so it never leaves the ball; the
        result is in S(x0) up to float rounding (not the exact Euclidean projection)."""
        delta = x - x0
        scale = (self.eps / _per_example_norm(delta).clamp_min(_TINY)).clamp(max=1.0)
        return (x0 + delta * scale).clamp(0.0, 1.0)

    def random_start(self, x0: Tensor, generator: torch.Generator) -> Tensor:
        """Uniform in the eps-ball around x0 [B,...], then projected: x0 + eps * U^(1/d) * u with u
        a uniform unit direction (normalised Gaussian), U ~ Uniform(0, 1) and d = C*H*W."""
        direction = _noise(torch.randn, x0.shape, generator, x0)
        direction = direction / _per_example_norm(direction).clamp_min(_TINY)
        radius = _noise(torch.rand, x0.shape[:1], generator, x0) ** (1.0 / x0[0].numel())
        radius = radius.view(-1, *([1] * (x0.dim() - 1)))
        return self.project(x0 + self.eps * radius * direction, x0)


class Linf(_ThreatModel):
    """S(x0) = { x : max_i |x_i - x0_i| <= eps  and  0 <= x <= 1 }, a box."""

    def step(self, x: Tensor, grad: Tensor) -> Tensor:
        """x [B,...] + step_size * sign(grad)."""
        return x + self.step_size * grad.sign()

    def project(self, x: Tensor, x0: Tensor) -> Tensor:
        """Clamp x [B,...] into the box around x0 and into [0, 1] (the exact projection)."""
        return torch.minimum(torch.maximum(x, x0 - self.eps), x0 + self.eps).clamp(0.0, 1.0)

    def random_start(self, x0: Tensor, generator: torch.Generator) -> Tensor:
        """x0 [B,...] plus Uniform(-eps, eps) per coordinate, projected into S(x0)."""
        u = _noise(torch.rand, x0.shape, generator, x0)
        return self.project(x0 + self.eps * (2.0 * u - 1.0), x0)


THREAT_MODELS: dict[str, type] = {"l2": L2, "linf": Linf}


def threat_model(norm: str, eps: float, step_size: float) -> L2 | Linf:
    """Instantiate the threat model ``norm`` ("l2" or "linf") after checking its parameters."""
    if norm not in THREAT_MODELS:
        raise ValueError(f"unknown norm '{norm}'; valid: {', '.join(THREAT_MODELS)}")
    if eps < 0 or step_size < 0:
        raise ValueError(f"eps and step_size must be >= 0, got eps={eps}, step_size={step_size}")
    return THREAT_MODELS[norm](eps, step_size)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str,
    eps: float,
    steps: int,
    step_size: float,
    targeted: bool = False,
    random_start: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient descent on the cross-entropy loss; returns the last iterate.

    Untargeted: maximise CE(model(x'), y). Targeted (``y`` holds the target classes): minimise it.
    The model is used in its current mode (put it in eval mode first so batch-norm statistics do
    not move) and no ``.grad`` is written to its parameters.

    Args:
        model: maps [B, C, H, W] images in [0, 1] to logits [B, K].
        x: clean images, float [B, C, H, W] in [0, 1]; y: int64 [B] labels or target classes.
        norm, eps: "l2" or "linf", and the radius in [0, 1] pixel units.
        steps: number of PGD iterations (0 returns the start point).
        step_size: step length (L2: Euclidean length; Linf: per coordinate).
        random_start: start from a random point of the feasible set (needs ``generator``).

    Returns:
        Detached tensor like x, inside {||x' - x|| <= eps} and [0, 1] (up to float rounding).
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} images but y has {y.shape[0]} labels")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if random_start and generator is None:
        raise ValueError("random_start=True needs an explicit torch.Generator")
    threat = threat_model(norm, eps, step_size)
    x0 = x.detach()
    x_adv = threat.random_start(x0, generator) if random_start else threat.project(x0, x0)
    # Descend on the target's CE when targeted, ascend on the label's CE otherwise.
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            # Sum, not mean: each example's gradient must not depend on the batch size.
            loss = F.cross_entropy(model(x_adv), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = threat.project(threat.step(x_adv.detach(), sign * grad), x0)
    return x_adv.detach()


def robust_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str,
    eps: float,
    steps: int,
    step_size: float,
    batch_size: int,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> float:
    """Share of images x [N, C, H, W] still classified correctly after untargeted :func:`pgd`.

    The generator is consumed batch after batch, so random starts depend on ``batch_size``.
    ``progress`` gets the number of images of each finished batch. With eps == 0 or steps == 0
    (and no random start) no attack runs: this is the clean accuracy.
    """
    if x.shape[0] == 0:
        raise ValueError("robust_accuracy needs at least one example")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    threat_model(norm, eps, step_size)  # fail early on a bad norm even when no attack runs
    attack = eps > 0 and (steps > 0 or random_start)
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        if attack:
            xb = pgd(
                model, xb, yb, norm=norm, eps=eps, steps=steps, step_size=step_size,
                random_start=random_start, generator=generator,
            )  # fmt: skip
        with torch.no_grad():
            correct += int((model(xb).argmax(dim=1) == yb).sum())
        if progress is not None:
            progress(len(yb))
    return correct / x.shape[0]
