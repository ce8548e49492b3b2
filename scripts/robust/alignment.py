"""Numbers for "perceptually aligned": per-image metrics of PAG images x made from start images x0.

All functions are pure and batched. Images are float tensors [P, C, H, W] in [0, 1] (P images);
the perturbation is delta = x - x0. Every metric returns one float64 value per image, shape [P].

* judge agreement: does an independent classifier (the judge) see the target class t in x?
  ``judge_<role>_share`` = 1 if argmax judge(x) == t else 0, ``judge_<role>_prob`` =
  softmax(judge(x))_t.
* alignment with the target: the reference image r_t of the target class (the prototype of the
  synthetic data: ground truth; on real data the class-mean training image) gives the "right"
  direction r_t - x0.
  ``cosine`` = cos(delta, r_t - x0); ``corr_gain`` = rho(x, r_t) - rho(x0, r_t), rho the Pearson
  correlation over all C*H*W pixel values.
* structure: ``hf_share`` = share of the energy of delta above a radial spatial
  frequency cutoff; ``tv_per_norm`` = anisotropic total variation of delta divided by its L2 norm.

cosine, hf_share and tv_per_norm do not change when delta is scaled, so they compare
perturbations of different sizes (generation eps) on equal terms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# Smallest norm or standard deviation treated as non-zero (float64 arithmetic).
_TINY = 1e-12


class JudgeError(ValueError):
    """A judge would score images generated on itself, or judges are specified inconsistently."""


@dataclass(frozen=True)
class MetricSpec:
    """A reported metric: key, table group, short label (LaTeX math that matplotlib mathtext also
    renders) and direction ("max" or "min": which end is "more perceptually aligned")."""

    name: str
    group: str
    label: str
    better: str


def metric_specs(roles: Sequence[str]) -> list[MetricSpec]:
    """The reported metrics in table order, for judges with the given roles (standard, robust)."""
    specs = []
    for role in roles:
        specs.append(MetricSpec(f"judge_{role}_share", f"Judge ({role})", "target share", "max"))
        specs.append(MetricSpec(f"judge_{role}_prob", f"Judge ({role})", "$p_t$", "max"))
    return specs + [
        MetricSpec("cosine", "Target reference", r"$\cos(\delta, r_t - x_0)$", "max"),
        MetricSpec("corr_gain", "Target reference", r"$\Delta\rho(x, r_t)$", "max"),
        MetricSpec("hf_share", "Structure", "high-freq. share", "min"),
        MetricSpec("tv_per_norm", "Structure", r"TV$/\Vert\delta\Vert_2$", "min"),
    ]


def check_judges(
    judges: Sequence[str], roles: Sequence[str], column_models: dict[str, str]
) -> None:
    """Raise JudgeError unless there is one role per judge, roles are unique and simple words, and
    no judge is the model under test of a column (``column_models``: column -> model id)."""
    if len(judges) != len(roles):
        raise JudgeError(f"{len(judges)} judges but {len(roles)} judge roles; give one role each")
    if len(set(roles)) != len(roles) or not all(r.isidentifier() for r in roles):
        raise JudgeError(f"judge roles must be distinct words, got {', '.join(roles)}")
    for judge in judges:
        for column, model in column_models.items():
            if judge == model:
                raise JudgeError(
                    f"judge '{judge}' is the model under test of column '{column}'; "
                    "a judge must be trained independently of the models it scores"
                )


@torch.no_grad()
def judge_agreement(
    judge: Callable[[Tensor], Tensor], x: Tensor, target: Tensor, batch_size: int = 500
) -> tuple[Tensor, Tensor]:
    """How an independent classifier sees the images.

    Args:
        judge: maps images [B, C, H, W] to logits [B, K] (eval mode; it runs on x's device).
        x: images [P, C, H, W] in [0, 1]; target: int64 [P] target classes.
        batch_size: images per forward pass.

    Returns:
        (target_share, target_prob), float64 [P] each, on the CPU: 1.0 where the judge's top-1
        class is the target (ties resolved by argmax: lowest index), and softmax(judge(x))_t.
    """
    probs = torch.cat([F.softmax(judge(x[i : i + batch_size]).double(), dim=1).cpu()
                       for i in range(0, len(x), batch_size)])  # fmt: skip
    t = target.view(-1, 1).cpu()
    return (probs.argmax(1) == t.view(-1)).double(), probs.gather(1, t).view(-1)


def _flat(x: Tensor) -> Tensor:
    return x.detach().reshape(x.shape[0], -1).double().cpu()


def cosine(delta: Tensor, direction: Tensor) -> Tensor:
    """cos(delta_i, direction_i) over all pixel values, float64 [P] in [-1, 1].

    Args:
        delta, direction: [P, C, H, W] (any units). A zero vector has cosine 0 (no alignment).
    """
    a, b = _flat(delta), _flat(direction)
    dot = (a * b).sum(1)
    norms = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norms > _TINY, dot / norms.clamp_min(_TINY), torch.zeros_like(dot))


def pearson(x: Tensor, y: Tensor) -> Tensor:
    """Pearson correlation of x_i and y_i over their C*H*W pixel values, float64 [P] in [-1, 1].

    Args:
        x, y: [P, C, H, W] images. A constant image has correlation 0 with anything.
    """
    a, b = _flat(x), _flat(y)
    return cosine(a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True))


def correlation_gain(x0: Tensor, x: Tensor, reference: Tensor) -> Tensor:
    """rho(x, reference) - rho(x0, reference) per image, float64 [P] in [-2, 2]; > 0: x looks more
    like the reference than x0 does. x0, x, reference: [P, C, H, W] in [0, 1]."""
    return pearson(x, reference) - pearson(x0, reference)


def radial_frequency(h: int, w: int) -> Tensor:
    """Radial spatial frequency of every 2-D DFT bin as a fraction of the Nyquist frequency.

    Bin (k, l) has frequencies f_y = fftfreq(h)[k], f_x = fftfreq(w)[l] in cycles per pixel
    (in [-0.5, 0.5)); its radial frequency is sqrt(f_y^2 + f_x^2) / 0.5: 0 at DC, 1 at the Nyquist
    frequency along an axis, up to sqrt(2) in the corners. Returns float64 [h, w].
    """
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    return torch.sqrt(fy**2 + fx**2) / 0.5


def _check_cutoff(cutoff: float) -> None:
    if not 0.0 < cutoff < math.sqrt(2.0):
        raise ValueError(f"frequency cutoff must lie in (0, sqrt 2) of Nyquist, got {cutoff}")


def high_frequency_share(delta: Tensor, cutoff: float) -> Tensor:
    """Share of the energy of delta at radial frequencies strictly above ``cutoff``.

    The 2-D DFT of each channel gives |F_c(k, l)|^2; energy per bin is the sum over channels (by
    Parseval the total is H*W*||delta||_2^2, DC included). The share is the energy of the bins
    with :func:`radial_frequency` > cutoff over the total energy.

    Args:
        delta: perturbations [P, C, H, W]; cutoff: fraction of Nyquist, in (0, sqrt 2).

    Returns:
        float64 [P] in [0, 1]; 0 for a zero perturbation. White noise scores about
        :func:`white_noise_high_frequency_share`; a smooth blob scores near 0.
    """
    _check_cutoff(cutoff)
    d = delta.detach().double().cpu()
    power = torch.fft.fft2(d).abs().square().sum(1)  # [P, H, W]
    high = radial_frequency(d.shape[-2], d.shape[-1]) > cutoff
    total = power.sum((1, 2))
    share = (power * high).sum((1, 2)) / total.clamp_min(_TINY)
    return torch.where(total > _TINY, share, torch.zeros_like(share))


def white_noise_high_frequency_share(h: int, w: int, cutoff: float) -> float:
    """Expected :func:`high_frequency_share` of i.i.d. noise on an h x w grid: the share of DFT
    bins above the cutoff (white noise spreads its expected energy equally over all bins).
    For large grids and cutoff <= 1 this tends to 1 - pi * cutoff^2 / 4."""
    _check_cutoff(cutoff)
    return float((radial_frequency(h, w) > cutoff).double().mean())


def total_variation(delta: Tensor) -> Tensor:
    """Anisotropic total variation sum_c sum |vertical diff| + |horizontal diff| of neighbouring
    pixels, float64 [P] in the units of delta. delta: [P, C, H, W]."""
    d = delta.detach().double().cpu()
    vertical = (d[..., 1:, :] - d[..., :-1, :]).abs().sum((1, 2, 3))
    horizontal = (d[..., :, 1:] - d[..., :, :-1]).abs().sum((1, 2, 3))
    return vertical + horizontal


def tv_per_norm(delta: Tensor) -> Tensor:
    """Total variation of delta per unit L2 norm, float64 [P] (dimensionless; 0 for delta = 0).

    Large for grainy, pixel-level perturbations (white noise: about
    :func:`white_noise_tv_per_norm`), small for smooth, structured ones.
    """
    norm = _flat(delta).norm(dim=1)
    tv = total_variation(delta)
    return torch.where(norm > _TINY, tv / norm.clamp_min(_TINY), torch.zeros_like(tv))


def white_noise_tv_per_norm(c: int, h: int, w: int) -> float:
    """Approximate :func:`tv_per_norm` of i.i.d. Gaussian noise on a [c, h, w] grid.

    Each of the c * (2hw - h - w) neighbour differences has E|diff| = 2 s / sqrt(pi) for noise
    of std s, and ||delta||_2 is about s * sqrt(c h w).
    """
    return 2.0 * c * (2 * h * w - h - w) / math.sqrt(math.pi * c * h * w)


def pag_metrics(
    x0: Tensor,
    x: Tensor,
    target: Tensor,
    reference: Tensor,
    judges: Mapping[str, Callable[[Tensor], Tensor]],
    cutoff: float,
    batch_size: int = 500,
) -> dict[str, Tensor]:
    """Every metric of :func:`metric_specs` for one batch of PAG images.

    Args:
        x0, x: start and PAG images [P, C, H, W] in [0, 1] (x on the judges' device).
        target: int64 [P] target classes; reference: reference image per class [K, C, H, W].
        judges: role -> judge (images -> logits), never the model that made x; {} for none.
        cutoff: frequency cutoff of :func:`high_frequency_share`; batch_size: judge batch.

    Returns:
        {metric name: float64 [P] on the CPU}: "cosine", "corr_gain", "hf_share",
        "tv_per_norm" and "judge_<role>_share", "judge_<role>_prob" per judge.
    """
    t = target.long().cpu()
    if x.shape != x0.shape or reference.shape[1:] != x0.shape[1:] or int(t.max()) >= len(reference):
        raise ValueError(
            f"images x0 {tuple(x0.shape)}, x {tuple(x.shape)} and reference images "
            f"{tuple(reference.shape)} (targets up to {int(t.max())}) do not fit together"
        )
    x0, ref = x0.detach().double().cpu(), reference.detach().double().cpu()[t]
    delta = x.detach().double().cpu() - x0
    values = {
        "cosine": cosine(delta, ref - x0),
        "corr_gain": correlation_gain(x0, x0 + delta, ref),
        "hf_share": high_frequency_share(delta, cutoff),
        "tv_per_norm": tv_per_norm(delta),
    }
    for role, judge in judges.items():
        share, prob = judge_agreement(judge, x, target.to(x.device), batch_size)
        values[f"judge_{role}_share"], values[f"judge_{role}_prob"] = share, prob
    return values


def white_noise_reference(c: int, h: int, w: int, cutoff: float) -> dict[str, float]:
    """{"hf_share", "tv_per_norm"} of white noise on a [c, h, w] grid (the "grainy" end)."""
    return {
        "hf_share": white_noise_high_frequency_share(h, w, cutoff),
        "tv_per_norm": white_noise_tv_per_norm(c, h, w),
    }
