"""LPIPS, the learned perceptual image distance of Zhang et al. (2018), with the AlexNet backbone.

For images x0, x1 in [-1, 1] (after a fixed per-channel input scaling),

    d(x0, x1) = sum_l mean_{h,w} sum_c w_{l,c} (u0_{l,c,h,w} - u1_{l,c,h,w})^2,

where l runs over AlexNet's five ReLU outputs (64, 192, 384, 256, 256 channels), u_l is that
output divided, at every position, by its L2 norm over the channels, and w_l >= 0 are learned
per-channel weights. d(x, x) = 0 and d is symmetric; each layer contributes at most 2 sum_c w_{l,c}.

Both weight sets are read from local files, nothing is downloaded: torchvision's ImageNet AlexNet
state dict (``alexnet-owt-7be5be79.pth``: ``features.{0,3,6,8,10}.{weight,bias}``, its
``classifier.*`` keys ignored) and the LPIPS v0.1 linear weights (``lin0.model.1.weight`` ..
``lin4.model.1.weight``, shapes [1, C_l, 1, 1]).

Images are compared at their own size, without upsampling, as Srinivas et al. (2023) do on 32x32
CIFAR-10: the last three layers then compare one feature vector per image. Minimum size: 31x31.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

CHANNELS = (64, 192, 384, 256, 256)  # channels of the five compared layers
_RELUS = (1, 4, 7, 9, 11)  # the ReLUs whose outputs are compared
# The reference input scaling x -> (x - shift) / scale per RGB channel: [-1, 1] images to roughly
# the ImageNet normalisation AlexNet was trained with.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
MIN_SIZE = 31  # smallest height and width that survive conv1 (stride 4) and two 3x3/2 max-pools
_EPS = 1e-10  # added to the channel norm so that an all-zero feature vector stays zero


class LpipsError(ValueError):
    """A weight file does not have the expected keys or shapes, or the inputs do not fit."""


def _checked(
    state: Mapping[str, Tensor], shapes: Mapping[str, tuple], what: str, ignore=()
) -> dict[str, Tensor]:
    """The tensors of ``state`` named in ``shapes`` (key -> shape), float32; a one-line LpipsError
    names the first missing or unexpected key (unless it starts with ``ignore``) or wrong shape."""
    keys = set(state)
    missing = [k for k in shapes if k not in keys]
    unexpected = sorted(k for k in keys - set(shapes) if not k.startswith(tuple(ignore)))
    for problem, found in (("missing", missing), ("unexpected", unexpected)):
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise LpipsError(f"{what}: {problem} key '{found[0]}'{more}")
    for key, shape in shapes.items():
        if tuple(state[key].shape) != shape:
            raise LpipsError(
                f"{what}: '{key}' has shape {tuple(state[key].shape)}, expected {shape}"
            )
    return {key: state[key].detach().float() for key in shapes}


def alexnet_features(state: Mapping[str, Tensor]) -> nn.Sequential:
    """torchvision's ``alexnet().features`` up to the last ReLU with the weights of ``state``, a
    torchvision AlexNet state dict; LpipsError on a missing or unexpected key or a wrong shape."""
    from robust._torchvision import import_torchvision

    with torch.device("meta"):  # shapes only: every weight is then taken from ``state``
        features = import_torchvision().models.alexnet(weights=None).features[: _RELUS[-1] + 1]
    shapes = {f"features.{name}": tuple(p.shape) for name, p in features.named_parameters()}
    own = _checked(state, shapes, "AlexNet weights", ignore=("classifier.",))
    features = features.to_empty(device="cpu")
    features.load_state_dict({key.removeprefix("features."): w for key, w in own.items()})
    return features.eval().requires_grad_(False)


def linear_weights(state: Mapping[str, Tensor]) -> list[Tensor]:
    """The five per-channel weights w_l, float32 [1, C_l, 1, 1], from an LPIPS v0.1 state dict;
    LpipsError on a missing or unexpected key, a wrong shape or a negative weight."""
    shapes = {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate(CHANNELS)}
    weights = _checked(state, shapes, "LPIPS weights")
    negative = [key for key, w in weights.items() if bool((w < 0).any())]
    if negative:
        raise LpipsError(f"LPIPS weights: '{negative[0]}' has negative entries; LPIPS needs w >= 0")
    return list(weights.values())


def _unit(f: Tensor) -> Tensor:
    """f [B, C, H, W] divided by its L2 norm over C at every position."""
    return f / (f.square().sum(dim=1, keepdim=True).sqrt() + _EPS)


class LPIPS(nn.Module):
    """d(x0, x1) of the module docstring, from :func:`alexnet_features` and
    :func:`linear_weights`; call it as ``lpips(x0, x1)`` -> float [B]."""

    def __init__(self, features: nn.Sequential, lin: Sequence[Tensor]) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        for i, w in enumerate(lin):
            self.register_buffer(f"lin{i}", w.clone())

    def forward(self, x0: Tensor, x1: Tensor) -> Tensor:
        """Distance per image pair, float [B] >= 0, for x0, x1 [B, 3, H, W] in [-1, 1]; LpipsError
        when the shapes differ, are not RGB, or are smaller than 31x31."""
        if x0.shape != x1.shape or x0.dim() != 4 or x0.shape[1] != 3:
            raise LpipsError(
                f"LPIPS needs two RGB batches of one shape, got {tuple(x0.shape)} and "
                f"{tuple(x1.shape)}"
            )
        if min(x0.shape[-2:]) < MIN_SIZE:
            raise LpipsError(f"LPIPS (AlexNet) needs images of at least {MIN_SIZE}x{MIN_SIZE}")
        # One pass over both batches; inputs are float32 whatever the caller's dtype.
        h = (torch.cat([x0, x1]).float() - self.shift) / self.scale
        total = torch.zeros(x0.shape[0], device=x0.device)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in _RELUS:  # compared layer l: ReLU output [2B, C_l, H_l, W_l]
                f0, f1 = h.chunk(2)
                diff = (_unit(f0) - _unit(f1)).square()
                weight = getattr(self, f"lin{_RELUS.index(i)}")
                total = total + (diff * weight).sum(1).mean(dim=(1, 2))
        return total


def load_lpips(alexnet: Path, lin: Path, device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS from the two local weight files (formats in the module docstring), in eval mode.
    FileNotFoundError, CheckpointError (unreadable) or LpipsError (wrong keys or shapes)."""
    from robust.checkpoint import read_torch_file

    state = read_torch_file(alexnet, "AlexNet weights")
    lin_state = read_torch_file(lin, "LPIPS weights")
    for path, s in ((alexnet, state), (lin, lin_state)):
        if not isinstance(s, Mapping):
            raise LpipsError(f"{path}: not a state dict (a mapping of tensor names to tensors)")
    return LPIPS(alexnet_features(state), linear_weights(lin_state)).to(device).eval()
