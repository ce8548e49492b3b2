"""What each classifier kind trains on: the batch perturbation ``perturb(model, x, y, generator)``.

Standard training uses the batch as it is; Gaussian-noise training (Cohen et al.) adds
sigma * N(0, I) with fresh noise per example and step, not clipped; adversarial training (Madry et
al.) replaces the batch by untargeted PGD in an eps-ball, run with the model in eval mode as the
``robustness`` library does. Images are [B, C, H, W] in [0, 1]; sigma and eps are in pixel units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

KINDS = ("standard", "gaussian", "adversarial")  # the classifier kinds of params.yaml
Perturbation = Callable[[nn.Module, Tensor, Tensor, torch.Generator], Tensor]


@dataclass(frozen=True)
class NoPerturbation:
    """Standard training: the batch as it is."""

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: Any) -> Tensor:
        return x


@dataclass(frozen=True)
class GaussianNoise:
    """x + sigma * N(0, I), fresh per example and call, drawn in float32; not clipped to [0, 1]."""

    sigma: float

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: Any) -> Tensor:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
        return x + self.sigma * noise


@dataclass(frozen=True)
class PGDPerturbation:
    """Untargeted ``robust.attacks.pgd`` in the ``norm`` ball of radius eps, model in eval mode."""

    norm: str
    eps: float
    steps: int
    step_size: float
    random_start: bool

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: Any) -> Tensor:
        from robust.attacks import pgd

        was_training = model.training
        model.eval()  # batch-norm statistics must not move while attacking
        try:
            return pgd(
                model, x, y, norm=self.norm, eps=self.eps, steps=self.steps,
                step_size=self.step_size, random_start=self.random_start, generator=generator,
            )  # fmt: skip
        finally:
            model.train(was_training)


def make_perturbation(
    kind: str,
    *,
    sigma: float = 0.0,
    norm: str = "l2",
    eps: float = 0.0,
    steps: int = 0,
    step_size: float = 0.0,
    random_start: bool = True,
) -> Perturbation:
    """The batch perturbation ``perturb(model, x, y, generator) -> x_train`` of a training kind.

    Args:
        kind: "standard", "gaussian" (sigma >= 0) or "adversarial" (PGD: norm "l2" or "linf",
            eps > 0, steps >= 1, step_size > 0).
        sigma, eps, step_size: in [0, 1] pixel units.
        norm, steps, random_start: PGD settings (see ``robust.attacks.pgd``).
    """
    if kind == "standard":
        return NoPerturbation()
    if kind == "gaussian":
        if sigma < 0:
            raise ValueError(f"gaussian training needs sigma >= 0, got {sigma}")
        return GaussianNoise(float(sigma))
    if kind == "adversarial":
        if norm not in ("l2", "linf") or eps <= 0 or steps < 1 or step_size <= 0:
            raise ValueError(
                "adversarial training needs norm l2 or linf, eps > 0, steps >= 1 and step_size"
                f" > 0; got norm={norm!r}, eps={eps}, steps={steps}, step_size={step_size}"
            )
        return PGDPerturbation(norm, float(eps), int(steps), float(step_size), bool(random_start))
    raise ValueError(f"unknown training kind '{kind}'; valid: {', '.join(KINDS)}")
