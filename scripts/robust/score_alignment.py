"""Score alignment (Srinivas et al. 2023): how far a classifier's input gradient is, perceptually,
from the score of the data distribution. Per image x in [0, 1] (float32 [N, C, H, W]):

* model direction g(x) = d/dx sum_k f_k(x), the gradient of the sum of the logits (the softmax
  sums to 1, so its gradient would be 0); for a classifier smoothed with N(0, sigma^2 I) noise
  (sigma in pixel units), the mean over m noise draws of the gradient at x + delta.
* reference direction: the score of p_sigma = p * N(0, sigma^2 I) by Tweedie's formula from a
  diffusion denoiser D(y; sigma) = E[x | x + sigma n = y], as EDM (Karras et al. 2022) does:
  grad_y log p_sigma(y) = (D(y; sigma) - y) / sigma^2. Srinivas et al. take EDM's CIFAR-10 model
  at sigma = 0.5 in EDM's [-1, 1] units (0.25 in [0, 1] pixel units).

Each map is divided by its largest absolute entry (into [-1, 1] like an image, its scale and units
removed) and the two are compared with LPIPS (:mod:`robust.lpips`): lower is more aligned.

The denoiser file holds no source: ``.pt2`` is a ``torch.export`` program, any other suffix a
TorchScript module (deprecated in torch 2.13 but read). It is called as ``D(y, sigma)``, y float32
[B, C, H, W] in [-1, 1], sigma float32 [B], and returns [B, C, H, W]; config/README.md shows how
to export EDM's released network.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from robust.pag import _per_image_noise  # the noise stream of the PAG images: image by image

Denoiser = Callable[[Tensor, Tensor], Tensor]
_TINY = 1e-30  # largest absolute entry below which a map counts as zero


class DenoiserError(RuntimeError):
    """The denoiser file cannot be loaded or its output does not fit its input."""


def load_denoiser(path: Path, device: torch.device | str = "cpu") -> Denoiser:
    """The denoiser saved at ``path`` on ``device``; FileNotFoundError, or DenoiserError when it is
    not a loadable program. Export it on the device it will run on: a traced graph may record
    the device of the tensors it creates."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"denoiser not found: {path}")
    try:
        if path.suffix == ".pt2":
            return torch.export.load(path).module().to(device)
        with warnings.catch_warnings():  # deprecated, and said so in the module docstring
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(path, map_location=device).eval()
    except Exception as err:  # zip, format and version errors all mean: not a usable program
        reason = " ".join(str(err).split())[:200]
        kind = "torch.export program" if path.suffix == ".pt2" else "TorchScript module"
        raise DenoiserError(f"cannot load {path} as a {kind}: {reason}") from None


@torch.no_grad()
def diffusion_score(denoiser: Denoiser, y: Tensor, sigma: float) -> Tensor:
    """(D(y; sigma) - y) / sigma^2, float32 [B, C, H, W], for y [B, C, H, W] and sigma > 0 in
    [-1, 1] units; DenoiserError when the output has another shape or is not finite."""
    if not sigma > 0:
        raise ValueError(f"the score needs a noise level sigma > 0, got {sigma}")
    y = y.float()
    denoised = denoiser(y, torch.full((y.shape[0],), float(sigma), device=y.device))
    if not isinstance(denoised, Tensor) or denoised.shape != y.shape:
        shape = tuple(denoised.shape) if isinstance(denoised, Tensor) else type(denoised).__name__
        raise DenoiserError(f"the denoiser returned {shape} for images of shape {tuple(y.shape)}")
    if not bool(torch.isfinite(denoised).all()):
        raise DenoiserError("the denoiser returned non-finite values")
    return (denoised.float() - y) / sigma**2


def score_maps(denoiser: Denoiser, x: Tensor, sigma: float, batch_size: int) -> Tensor:
    """:func:`diffusion_score` of images x [N, C, H, W] in [0, 1] as 2x - 1, ``batch_size`` at a
    time, float32 [N, C, H, W] on x's device (w.r.t. x it is twice that, which scaling removes)."""
    batches = (2.0 * x[i : i + batch_size] - 1.0 for i in range(0, x.shape[0], batch_size))
    return torch.cat([diffusion_score(denoiser, y, sigma) for y in batches])


def logit_sum_gradient(
    model: nn.Module,
    x: Tensor,
    sigma: float = 0.0,
    m: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Input gradient of the sum of all logits, float32 [B, C, H, W] (logit per pixel unit), of
    model (eval mode; its parameters get no gradient) at images x [B, C, H, W] in [0, 1].

    sigma > 0: the mean over m noisy copies x + delta_i (unbiased for the smoothed gradient), the
    noise drawn from generator image after image, so batching does not change the result.
    """
    if sigma < 0 or m < 1:
        raise ValueError(f"need sigma >= 0 and m >= 1, got sigma={sigma}, m={m}")
    x = inputs = x.detach().float()
    if sigma > 0:
        if generator is None:
            raise ValueError("a smoothed gradient (sigma > 0) needs a generator for its noise")
        noise = _per_image_noise(x, m, sigma, generator)  # [B, m, C, H, W]
        inputs = (x.unsqueeze(1) + noise).flatten(0, 1)  # [B*m, C, H, W]
    inputs.requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(model(inputs).sum(), inputs)
    # the mean over each image's copies: m of them for sigma > 0, the image itself for sigma 0
    return grad.view(x.shape[0], -1, *x.shape[1:]).mean(dim=1).detach()


def max_abs_scale(v: Tensor) -> Tensor:
    """Each map v_i [C, H, W] of v [B, C, H, W] divided by max |v_i|, so it spans [-1, 1]; an
    all-zero map stays zero."""
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
    """Per-image LPIPS between the model direction and the scores (reference maps, any scale)
    of images x [N, C, H, W], float64 [N] on the CPU; model, sigma, m, generator as for
    :func:`logit_sum_gradient`. batch_size: most model inputs per pass, noisy copies included."""
    if x.shape != scores.shape:
        raise ValueError(f"images {tuple(x.shape)} and scores {tuple(scores.shape)} differ")
    per_pass = max(1, batch_size // m) if sigma > 0 else batch_size
    out = []
    for i in range(0, x.shape[0], per_pass):
        g = logit_sum_gradient(model, x[i : i + per_pass], sigma, m, generator)
        out.append(alignment_distance(lpips, g, scores[i : i + per_pass]).double().cpu())
    return torch.cat(out)
