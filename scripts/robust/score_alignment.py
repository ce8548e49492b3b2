"""Score alignment (Srinivas et al. 2023): how far a classifier's input gradient is, perceptually,
from the score of the data distribution.

Per image x, two maps of the shape of x are compared:

* the model direction g(x) = d/dx sum_k f_k(x), the input gradient of the sum of all logits;
  for a smoothed classifier the gradient of the noise-averaged logits,
  d/dx E_delta[sum_k f_k(x + delta)] = E_delta[d/dx sum_k f_k(x + delta)], delta ~ N(0, sigma^2 I),
  estimated by the mean over m draws. (Logits, not probabilities: the softmax sums to 1 over the
  classes, so the gradient of its sum is 0.) sigma = 0 gives the plain model's gradient.
* the reference direction: the score of a diffusion model's noisy data distribution
  (:mod:`robust.score`).

Each map is divided by its largest absolute entry, which puts it in [-1, 1] like an image and
removes its scale (and any change of pixel units), and the two are compared with LPIPS
(:mod:`robust.lpips`). Lower means more aligned; identical directions give 0.

Images x are float32 [N, C, H, W] in [0, 1] pixels; sigma is in the same units.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from robust.pag import _per_image_noise  # the noise stream of the PAG images: image by image

# Largest absolute entry below which a map counts as zero (it stays zero after scaling).
_TINY = 1e-30


def logit_sum_gradient(
    model: nn.Module,
    x: Tensor,
    sigma: float = 0.0,
    m: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Input gradient of the sum of all logits, float32 [B, C, H, W] (logit per pixel unit).

    Args:
        model: classifier, images [B, C, H, W] in [0, 1] -> logits [B, K], in eval mode; no
            gradient reaches its parameters.
        x: images [B, C, H, W] in [0, 1].
        sigma: 0 for the model itself; > 0 for the mean over m noisy copies x + delta_i of the
            gradient at x + delta_i (an unbiased estimate of the smoothed gradient).
        m: noise draws per image (sigma > 0 only); generator: their source (sigma > 0 only),
            drawn image after image, so the result does not depend on how images are batched.
    """
    if sigma < 0 or m < 1:
        raise ValueError(f"need sigma >= 0 and m >= 1, got sigma={sigma}, m={m}")
    x = x.detach().float()
    if sigma > 0:
        if generator is None:
            raise ValueError("a smoothed gradient (sigma > 0) needs a generator for its noise")
        noise = _per_image_noise(x, m, sigma, generator)  # [B, m, C, H, W]
        inputs = (x.unsqueeze(1) + noise).flatten(0, 1)  # [B*m, C, H, W]
    else:
        inputs = x
    inputs.requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(model(inputs).sum(), inputs)
    if sigma > 0:
        grad = grad.view(x.shape[0], m, *x.shape[1:]).mean(dim=1)
    return grad.detach()


def max_abs_scale(v: Tensor) -> Tensor:
    """Each map v_i [C, H, W] of v [B, C, H, W] divided by max |v_i|, so it spans [-1, 1].

    An all-zero map stays zero.
    """
    peak = v.detach().flatten(1).abs().amax(dim=1).view(-1, *([1] * (v.dim() - 1)))
    return torch.where(peak > _TINY, v / peak.clamp_min(_TINY), torch.zeros_like(v))


@torch.no_grad()
def alignment_distance(lpips: Callable[[Tensor, Tensor], Tensor], g: Tensor, s: Tensor) -> Tensor:
    """LPIPS(max_abs_scale(g), max_abs_scale(s)), float [B]; g, s: maps [B, 3, H, W]."""
    return lpips(max_abs_scale(g.float()), max_abs_scale(s.float()))


def score_alignment(
    model: nn.Module,
    x: Tensor,
    scores: Tensor,
    lpips: Callable[[Tensor, Tensor], Tensor],
    *,
    sigma: float,
    m: int,
    generator: torch.Generator | None,
    batch_size: int,
) -> Tensor:
    """Per-image LPIPS between the model direction and the score, float64 [N] on the CPU.

    Args:
        model, sigma, m, generator: as for :func:`logit_sum_gradient`.
        x: images [N, C, H, W] in [0, 1]; scores: the reference maps [N, C, H, W] (any scale).
        lpips: distance between two batches of [-1, 1] images (:class:`robust.lpips.LPIPS`).
        batch_size: most model inputs per backward pass, noisy copies included (images per pass:
            batch_size // m for sigma > 0).
    """
    if x.shape != scores.shape:
        raise ValueError(f"images {tuple(x.shape)} and scores {tuple(scores.shape)} differ")
    per_pass = max(1, batch_size // m) if sigma > 0 else batch_size
    if per_pass < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = []
    for i in range(0, x.shape[0], per_pass):
        g = logit_sum_gradient(model, x[i : i + per_pass], sigma, m, generator)
        out.append(alignment_distance(lpips, g, scores[i : i + per_pass]).double().cpu())
    return torch.cat(out)
