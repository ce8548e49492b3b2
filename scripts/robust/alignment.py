"""Numbers for "perceptually aligned": per-image metrics of PAG images x made from start images x0.

All functions are pure and batched. Images are float tensors [P, C, H, W] in [0, 1] (P images);
the perturbation is delta = x - x0. Every metric returns one float64 value per image, shape [P].

* judge agreement: does a judge, a classifier trained apart from the models under test (another
  architecture, seed and training objective), see the target class t in x? Per judge role
  (:data:`JUDGE_ROLES`, from its kind): ``judge_<role>_share`` = 1 if argmax judge(x) == t else 0,
  ``judge_<role>_prob`` = softmax(judge(x))_t.
* alignment with the target: the reference image r_t of the target class (the prototype of the
  synthetic data: ground truth; on real data the class-mean training image) gives the "right"
  direction r_t - x0. Both metrics are cosines of spatial structure only: every channel is first
  centred on its own mean, so a per-channel constant shift (a colour or brightness change toward
  the blurry class mean) scores exactly 0, and random noise about 0.
  ``cosine`` = cos(delta, r_t - x0): does the image move toward the reference;
  ``ref_corr`` = rho(delta, r_t), the Pearson correlation of the perturbation with the reference
  over all C*H*W pixel values: does the change draw the target, whatever the start image.
* structure (descriptions of smoothness, not evidence of alignment): ``hf_share`` = share of the
  energy of delta above a radial spatial frequency cutoff; ``tv_per_norm`` = anisotropic total
  variation of delta divided by its L2 norm.

cosine, hf_share and tv_per_norm do not change when delta is scaled, so they compare
perturbations of different sizes (generation eps) on equal terms. :func:`controls` calibrates every
metric: a random direction ("no better than noise") and a straight step toward the reference
("aligned"), both of the perturbation's norm.
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
# The role of a judge in the metric names, from the kind of its training.
JUDGE_ROLES = {"standard": "standard", "adversarial": "adversarial", "gaussian": "noise"}
# The metrics that claim alignment with the target's reference image (the rest describe smoothness).
REFERENCE_METRICS = ("cosine", "ref_corr")


class JudgeError(ValueError):
    """A judge would score images generated on itself, or judges are specified inconsistently."""


@dataclass(frozen=True)
class MetricSpec:
    """A reported metric: key, table group, short label (LaTeX math that matplotlib mathtext also
    renders), direction ("max" or "min": which end is "more perceptually aligned") and whether it
    is shown in the table and figure (every metric is in the JSON and TSV)."""

    name: str
    group: str
    label: str
    better: str
    shown: bool = True


def metric_specs(roles: Sequence[str]) -> list[MetricSpec]:
    """The reported metrics in table order, for judges of the given roles (:data:`JUDGE_ROLES`)."""
    specs = []
    for role in roles:
        specs.append(MetricSpec(f"judge_{role}_share", "Judges: target share", role, "max"))
        specs.append(MetricSpec(f"judge_{role}_prob", "Judges", f"$p_t$ ({role})", "max", False))
    return specs + [
        MetricSpec("cosine", "Target reference", r"$\cos(\delta, r_t - x_0)$", "max"),
        MetricSpec("ref_corr", "Target reference", r"$\rho(\delta, r_t)$", "max"),
        MetricSpec("hf_share", "Smoothness", "high-freq. share", "min"),
        MetricSpec("tv_per_norm", "Smoothness", r"TV$/\Vert\delta\Vert_2$", "min"),
    ]


def check_judges(judges: Mapping[str, str], column_models: dict[str, str]) -> dict[str, str]:
    """Role -> judge id, for judges given as id -> kind of training; JudgeError unless every kind
    has a role, the roles are distinct and no judge is the model under test of a column
    (``column_models``: column -> model id)."""
    unknown = [j for j, kind in judges.items() if kind not in JUDGE_ROLES]
    if unknown:
        raise JudgeError(f"judge '{unknown[0]}' has kind '{judges[unknown[0]]}'; valid: "
                         f"{', '.join(JUDGE_ROLES)}")  # fmt: skip
    roles = {JUDGE_ROLES[kind]: judge for judge, kind in judges.items()}
    if len(roles) != len(judges):
        raise JudgeError(f"judges {', '.join(judges)} share a kind; give one judge per kind")
    for column, model in column_models.items():
        if model in judges:
            raise JudgeError(
                f"judge '{model}' is the model under test of column '{column}'; "
                "a judge must be trained apart from the models it scores"
            )
    return roles


@torch.no_grad()
def judge_agreement(
    judge: Callable[[Tensor], Tensor], x: Tensor, target: Tensor, batch_size: int = 500
) -> tuple[Tensor, Tensor]:
    """(target_share, target_prob) of images x [P, C, H, W] in [0, 1] with int64 targets [P] under
    a judge (images [B, C, H, W] -> logits [B, K], eval mode, on x's device; ``batch_size`` images
    per pass): float64 [P] each, on the CPU; 1.0 where the judge's top-1 class is the target (ties
    resolved by argmax: lowest index), and softmax(judge(x))_t."""
    probs = torch.cat([F.softmax(judge(x[i : i + batch_size]).double(), dim=1).cpu()
                       for i in range(0, len(x), batch_size)])  # fmt: skip
    t = target.view(-1, 1).cpu()
    return (probs.argmax(1) == t.view(-1)).double(), probs.gather(1, t).view(-1)


def _flat(x: Tensor) -> Tensor:
    return x.detach().reshape(x.shape[0], -1).double().cpu()


def _centred(x: Tensor) -> Tensor:
    """Each channel of x [P, C, H, W] minus its own spatial mean, float64 [P, C*H*W]."""
    x = x.detach().double().cpu()
    return _flat(x - x.mean(dim=(2, 3), keepdim=True))


def cosine(delta: Tensor, direction: Tensor) -> Tensor:
    """cos(delta_i, direction_i) over all pixel values after centring every channel on its mean,
    float64 [P] in [-1, 1], for delta, direction [P, C, H, W] (any units). A zero vector, or a
    per-channel constant, has cosine 0 (no alignment)."""
    a, b = _centred(delta), _centred(direction)
    dot = (a * b).sum(1)
    norms = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norms > _TINY, dot / norms.clamp_min(_TINY), torch.zeros_like(dot))


def radial_frequency(h: int, w: int) -> Tensor:
    """Radial spatial frequency of every 2-D DFT bin as a fraction of the Nyquist frequency.

    Bin (k, l) has frequencies f_y = fftfreq(h)[k], f_x = fftfreq(w)[l] in cycles per pixel
    (in [-0.5, 0.5)); its radial frequency is sqrt(f_y^2 + f_x^2) / 0.5: 0 at DC, 1 at the Nyquist
    frequency along an axis, up to sqrt(2) in the corners. Returns float64 [h, w].
    """
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    return torch.sqrt(fy**2 + fx**2) / 0.5


def high_frequency_share(delta: Tensor, cutoff: float) -> Tensor:
    """Share of the energy of delta [P, C, H, W] in the 2-D DFT bins whose
    :func:`radial_frequency` is strictly above ``cutoff`` (a fraction of Nyquist, in (0, sqrt 2)),
    float64 [P] in [0, 1]. Energy per bin is sum_c |F_c(k, l)|^2 (by Parseval the total is
    H*W*||delta||_2^2, DC included). A zero perturbation scores 0, white noise about the share of
    bins above the cutoff (the random control of :func:`controls`), a smooth blob near 0.
    """
    if not 0.0 < cutoff < math.sqrt(2.0):
        raise ValueError(f"frequency cutoff must lie in (0, sqrt 2) of Nyquist, got {cutoff}")
    d = delta.detach().double().cpu()
    power = torch.fft.fft2(d).abs().square().sum(1)  # [P, H, W]
    high = radial_frequency(d.shape[-2], d.shape[-1]) > cutoff
    total = power.sum((1, 2))
    share = (power * high).sum((1, 2)) / total.clamp_min(_TINY)
    return torch.where(total > _TINY, share, torch.zeros_like(share))


def tv_per_norm(delta: Tensor) -> Tensor:
    """Anisotropic total variation of delta [P, C, H, W] (sum over channels of |vertical| +
    |horizontal| differences of neighbouring pixels) per unit L2 norm, float64 [P]
    (dimensionless; 0 for delta = 0). Large for grainy, pixel-level perturbations (white noise:
    about 2 (2hw - h - w) c / sqrt(pi c h w)), small for smooth, structured ones.
    """
    d = delta.detach().double().cpu()
    vertical = (d[..., 1:, :] - d[..., :-1, :]).abs().sum((1, 2, 3))
    horizontal = (d[..., :, 1:] - d[..., :, :-1]).abs().sum((1, 2, 3))
    norm, tv = _flat(d).norm(dim=1), vertical + horizontal
    return torch.where(norm > _TINY, tv / norm.clamp_min(_TINY), torch.zeros_like(tv))


def pag_metrics(
    x0: Tensor,
    x: Tensor,
    target: Tensor,
    reference: Tensor,
    judges: Mapping[str, Callable[[Tensor], Tensor]],
    cutoff: float,
    batch_size: int = 500,
) -> dict[str, Tensor]:
    """Every metric of :func:`metric_specs` for one batch of PAG images, {name: float64 [P] on the
    CPU}: "cosine", "ref_corr", "hf_share", "tv_per_norm" and per judge role "judge_<role>_share"
    and "judge_<role>_prob".

    Args:
        x0, x: start and PAG images [P, C, H, W] in [0, 1] (x on the judges' device).
        target: int64 [P] target classes; reference: reference image per class [K, C, H, W].
        judges: role -> judge (images -> logits), never the model that made x; {} for none.
        cutoff: frequency cutoff of :func:`high_frequency_share`; batch_size: judge batch.
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
        "ref_corr": cosine(delta, ref),
        "hf_share": high_frequency_share(delta, cutoff),
        "tv_per_norm": tv_per_norm(delta),
    }
    for role, judge in judges.items():
        share, prob = judge_agreement(judge, x, target.to(x.device), batch_size)
        values[f"judge_{role}_share"], values[f"judge_{role}_prob"] = share, prob
    return values


def controls(
    x0: Tensor, target: Tensor, reference: Tensor, eps: float, generator: torch.Generator
) -> dict[str, Tensor]:
    """The calibration images of one generation radius, float64 [P, C, H, W] in [0, 1] each:
    ``random``, x0 plus a random direction (isotropic Gaussian, normalised) of L2 norm eps, what a
    perturbation "no better than noise" scores; ``reference``, x0 plus a straight step of norm eps
    toward the target's reference image r_t, what an "aligned" one scores. Both are clipped to
    [0, 1], as PAG images are (their norm can then end below eps). generator: a CPU generator."""
    x0 = x0.detach().double().cpu()
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    toward = reference.detach().double().cpu()[target.long().cpu()] - x0

    def step(direction: Tensor) -> Tensor:
        norm = _flat(direction).norm(dim=1).clamp_min(_TINY).view(-1, 1, 1, 1)
        return (x0 + eps * direction / norm).clamp(0.0, 1.0)

    return {"random": step(noise), "reference": step(toward)}


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two scorings of the same items: 1 when they order the items alike, -1
    when reversed; ties are allowed. nan with fewer than two items or a constant scoring."""
    if len(a) != len(b):
        raise ValueError(
            f"kendall_tau needs two scorings of the same items, got {len(a)}, {len(b)}"
        )

    def signs(scores: Sequence[float]) -> Tensor:  # sign(v_i - v_j) of every pair i < j, else 0
        v = torch.tensor(scores, dtype=torch.float64)
        return (v[:, None] - v[None, :]).sign().triu(1)

    sa, sb = signs(a), signs(b)
    denominator = math.sqrt(int(sa.count_nonzero()) * int(sb.count_nonzero()))
    return int((sa * sb).sum()) / denominator if denominator else math.nan
