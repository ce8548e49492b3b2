"""The score of a diffusion model's noisy image distribution, read off its denoiser.

Let p be the data distribution and p_sigma = p * N(0, sigma^2 I) its version blurred by Gaussian
noise. The minimum-MSE denoiser D(y; sigma) = E[x | x + sigma n = y] and the score of p_sigma are
tied by Tweedie's formula (Robbins 1956; Miyasawa 1961), which EDM (Karras et al. 2022) uses to
turn its denoiser into a score:

    grad_y log p_sigma(y) = (D(y; sigma) - y) / sigma^2.

Srinivas et al. (2023) take this score of EDM's unconditional CIFAR-10 model at sigma = 0.5 as the
perceptually aligned reference direction. EDM works on images in [-1, 1], so y and sigma are in
[-1, 1] units here (sigma = 0.5 is 0.25 in [0, 1] pixel units); :func:`to_signed` converts.

The denoiser is loaded from a local file, without the code that defined it:

* ``.pt2``: a ``torch.export`` program (``torch.export.save``), the format current torch supports;
* any other suffix: a TorchScript module (``torch.jit.save``), deprecated in torch 2.13 but read.

Either way it is called as ``D(y, sigma)`` with y float32 [B, C, H, W] in [-1, 1] and sigma
float32 [B] (one noise level per image) and returns the denoised images [B, C, H, W].
config/README.md shows how to export EDM's released network into such a file.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]


class DenoiserError(RuntimeError):
    """The denoiser file cannot be loaded or its output does not fit its input."""


def to_signed(x: Tensor) -> Tensor:
    """Images in [0, 1] -> [-1, 1] (2x - 1), the convention of EDM and LPIPS."""
    return 2.0 * x - 1.0


def load_denoiser(path: Path, device: torch.device | str = "cpu") -> Denoiser:
    """The denoiser saved at ``path`` (format by suffix, see the module docstring) on ``device``.

    Export the network on the device it will run on: a traced graph may record the device of
    the tensors it creates.

    Raises:
        FileNotFoundError: no file; DenoiserError: the file is not a loadable program.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"denoiser not found: {path}")
    try:
        if path.suffix == ".pt2":
            module = torch.export.load(path).module().to(device)
        else:
            with warnings.catch_warnings():  # deprecated, and said so in the module docstring
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(path, map_location=device).eval()
    except Exception as err:  # zip, format and version errors all mean: not a usable program
        reason = " ".join(str(err).split())[:200]
        kind = "torch.export program" if path.suffix == ".pt2" else "TorchScript module"
        raise DenoiserError(f"cannot load {path} as a {kind}: {reason}") from None
    return module


@torch.no_grad()
def diffusion_score(denoiser: Denoiser, y: Tensor, sigma: float) -> Tensor:
    """(D(y; sigma) - y) / sigma^2, the score of p_sigma at y (see the module docstring).

    Args:
        denoiser: called as ``denoiser(y, sigma [B])``; y: float [B, C, H, W] in [-1, 1].
        sigma: noise level in [-1, 1] units, > 0.

    Returns:
        float32 [B, C, H, W] in units of 1 / ([-1, 1] units).

    Raises:
        ValueError: sigma <= 0; DenoiserError: the output has another shape or is not finite.
    """
    if not sigma > 0:
        raise ValueError(f"the score needs a noise level sigma > 0, got {sigma}")
    y = y.float()
    levels = torch.full((y.shape[0],), float(sigma), device=y.device)
    denoised = denoiser(y, levels)
    if not isinstance(denoised, Tensor) or denoised.shape != y.shape:
        shape = tuple(denoised.shape) if isinstance(denoised, Tensor) else type(denoised).__name__
        raise DenoiserError(f"the denoiser returned {shape} for images of shape {tuple(y.shape)}")
    if not bool(torch.isfinite(denoised).all()):
        raise DenoiserError("the denoiser returned non-finite values")
    return (denoised.float() - y) / sigma**2


def score_maps(denoiser: Denoiser, x: Tensor, sigma: float, batch_size: int) -> Tensor:
    """:func:`diffusion_score` of images x [N, C, H, W] in [0, 1], ``batch_size`` at a time.

    Returns float32 [N, C, H, W] on x's device (the gradient w.r.t. the [-1, 1] image; w.r.t. the
    [0, 1] image it is twice that, a factor that max-abs scaling removes).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chunks = [
        diffusion_score(denoiser, to_signed(x[i : i + batch_size]), sigma)
        for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(chunks)
