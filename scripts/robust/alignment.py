"""Numbers for "perceptually aligned": per-image metrics of PAG images x made from start images x0.

Images are float [P, C, H, W] in [0, 1]; delta = x - x0; every metric is float64 [P].

* judges (classifiers trained apart from the models under test), per role of :data:`JUDGE_ROLES`:
  ``judge_<role>_share`` = [argmax judge(x) == t], ``judge_<role>_prob`` = softmax(judge(x))_t.
* target reference r_t (synthetic prototype: ground truth; on real data the class-mean image):
  ``cosine`` = cos(delta, r_t - x0), ``ref_corr`` = rho(delta, r_t) (Pearson over all pixels).
  Every channel is centred on its mean first, so a per-channel constant shift (a colour change
  toward the blurry class mean) scores exactly 0, and random noise about 0.
* smoothness (a description, not evidence of alignment): ``hf_share``, the energy share above a
  radial frequency cutoff; ``tv_per_norm``, total variation per L2 norm.

cosine, hf_share and tv_per_norm are scale-invariant, so perturbations of different eps compare
on equal terms; :func:`controls` gives the "noise" and "aligned" calibration points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_TINY = 1e-12  # smallest norm treated as non-zero (float64)
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


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den, and 0 where den is (near) zero."""
    return torch.where(den > _TINY, num / den.clamp_min(_TINY), torch.zeros_like(num))


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
    return _ratio((a * b).sum(1), a.norm(dim=1) * b.norm(dim=1))


def radial_frequency(h: int, w: int) -> Tensor:
    """sqrt(f_y^2 + f_x^2) / 0.5 of every 2-D DFT bin (fftfreq, cycles per pixel), float64 [h, w]:
    a fraction of Nyquist, 0 at DC, 1 at Nyquist along an axis, up to sqrt(2) in the corners."""
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
    return _ratio((power * high).sum((1, 2)), power.sum((1, 2)))


def tv_per_norm(delta: Tensor) -> Tensor:
    """Anisotropic total variation (sum of |differences| of neighbouring pixels) of delta
    [P, C, H, W] per unit L2 norm, float64 [P] (0 for delta = 0). White noise scores about
    2 (2hw - h - w) c / sqrt(pi c h w); smooth, structured perturbations score low."""
    d = delta.detach().double().cpu()
    vertical = (d[..., 1:, :] - d[..., :-1, :]).abs().sum((1, 2, 3))
    horizontal = (d[..., :, 1:] - d[..., :, :-1]).abs().sum((1, 2, 3))
    return _ratio(vertical + horizontal, _flat(d).norm(dim=1))


def pag_metrics(
    x0: Tensor,
    x: Tensor,
    target: Tensor,
    reference: Tensor,
    judges: Mapping[str, Callable[[Tensor], Tensor]],
    cutoff: float,
    batch_size: int = 500,
) -> dict[str, Tensor]:
    """Every metric of :func:`metric_specs` for one batch, {name: float64 [P] on the CPU}.

    x0, x: start and PAG images [P, C, H, W] (x on the judges' device); target: int64 [P];
    reference: image per class [K, C, H, W]; judges: role -> judge (images -> logits), never the
    model that made x ({} for none); cutoff: of :func:`high_frequency_share`.
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
    """Calibration images of radius eps, float64 [P, C, H, W]: ``random``, x0 plus an isotropic
    Gaussian direction of L2 norm eps ("no better than noise"), and ``reference``, a step of norm
    eps toward r_t ("aligned"); clipped to [0, 1] as PAG images are. generator: on the CPU."""
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
