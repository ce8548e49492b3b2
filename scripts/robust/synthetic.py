"""An offline, CIFAR-shaped data set whose ten classes are shapes a person recognises at a glance.

Each image (3x32x32, uint8) is a light shape on a darker background. Only the shape carries the
class: colours, position, scale, rotation, a smooth brightness texture and pixel noise are drawn
independently of it, and every shape covers about the same area, so colour or mean brightness alone
predicts the class no better than chance. Each class also has a clean prototype (centred, grey, in
the mean colours of the data), of which the class mean is a blurred copy; alignment metrics compare
perturbations with ``prototype[target] - x0``. Deterministic for a seed; 10,000 images take ~1 s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from robust.io import sealed, torch_save

SIZE = 32
_PIXEL = 2.0 / SIZE  # one pixel in image units; the image spans [-1, 1] on both axes
_ROOT2 = math.sqrt(2.0)

# Nuisance ranges, all independent of the class.
_JITTER = 0.15  # centre offset, image units (about 2.4 pixels)
_SCALE = (0.8, 1.15)
_ANGLE = math.radians(12.0)  # small, so "cross" and "x" (45 degrees apart) never meet
_FG = (0.55, 1.0)  # per-channel foreground range; always lighter than the background ...
_BG = (0.0, 0.45)  # ... so that class means resemble the prototypes
_TEXTURE = 0.08  # std of a smooth, low-frequency brightness field (lighting, stains)
_NOISE = 0.06  # largest per-image std of Gaussian pixel noise
_CHUNK = 500  # images rendered at a time

SPLIT_STREAMS = {"train": 0, "test": 1}


def _box(u: Tensor, v: Tensor, half: float = 0.75) -> Tensor:
    return half - torch.maximum(u.abs(), v.abs())


def _stripes(t: Tensor, period: float = 0.5, half_width: float = 0.12) -> Tensor:
    return half_width - (t - period * torch.round(t / period)).abs()


def _cross(u: Tensor, v: Tensor) -> Tensor:
    horizontal = torch.minimum(0.2 - v.abs(), 0.8 - u.abs())
    vertical = torch.minimum(0.2 - u.abs(), 0.8 - v.abs())
    return torch.maximum(horizontal, vertical)


def _checker(u: Tensor, v: Tensor, cell: float = 0.375) -> Tensor:
    fu, fv = u / cell, v / cell
    edge = torch.minimum((fu - fu.round()).abs(), (fv - fv.round()).abs()) * cell
    sign = 1 - 2 * torch.remainder(fu.floor() + fv.floor(), 2)
    return torch.minimum(_box(u, v), sign * edge)


# The classes, in label order, as signed distances of shape coordinates (u, v), v pointing down:
# positive inside, in shape units, so a one-pixel ramp anti-aliases the edge. Sizes are chosen so
# every shape covers about 1.1 of the 4 square units of the image.
_SHAPES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "disc": lambda u, v: 0.6 - torch.hypot(u, v),
    "ring": lambda u, v: 0.15 - (torch.hypot(u, v) - 0.58).abs(),
    "square": lambda u, v: 0.12 - (torch.maximum(u.abs(), v.abs()) - 0.58).abs(),
    "cross": _cross,
    "x": lambda u, v: _cross((u + v) / _ROOT2, (v - u) / _ROOT2),
    "hbars": lambda u, v: torch.minimum(_box(u, v), _stripes(v)),
    "vbars": lambda u, v: torch.minimum(_box(u, v), _stripes(u)),
    # apex at (0, -0.75), base from (-0.75, 0.75) to (0.75, 0.75)
    "triangle": lambda u, v: torch.minimum(0.75 - v, (0.75 - 2 * u.abs() + v) / math.sqrt(5.0)),
    "checker": _checker,
    "diagonal": lambda u, v: torch.minimum(_box(u, v), _stripes((u + v) / _ROOT2)),
}
CLASS_NAMES: tuple[str, ...] = tuple(_SHAPES)
NUM_CLASSES = len(CLASS_NAMES)


def masks(labels: Tensor, cx: Tensor, cy: Tensor, scale: Tensor, angle: Tensor) -> Tensor:
    """Anti-aliased shape masks, float32 [N, SIZE, SIZE] in [0, 1]: 1 inside the shape, a
    one-pixel linear ramp at its edge. All arguments are [N]: int64 class indices, float32 centres
    in image units ([-1, 1], y pointing down), size relative to the nominal shape, and rotation in
    radians."""
    grid = (torch.arange(SIZE, dtype=torch.float32) + 0.5) * _PIXEL - 1.0
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    s = scale[:, None, None]
    u, v = (cos * dx + sin * dy) / s, (cos * dy - sin * dx) / s
    dist = torch.empty_like(u)
    for k, draw in enumerate(_SHAPES.values()):
        chosen = labels == k
        dist[chosen] = draw(u[chosen], v[chosen])
    return (0.5 + dist * s / _PIXEL).clamp(0.0, 1.0)


def _to_uint8(x: Tensor) -> Tensor:
    return x.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)


def _render(y: Tensor, g: torch.Generator) -> Tensor:
    """Draw the nuisances for labels ``y`` from ``g`` and render: uint8 [len(y), 3, SIZE, SIZE]."""
    n = len(y)

    def uniform(low: float, high: float, *shape: int) -> Tensor:
        return torch.rand(*shape, generator=g).mul_(high - low).add_(low)

    shift = uniform(-_JITTER, _JITTER, 2, n)
    mask = masks(y, shift[0], shift[1], uniform(*_SCALE, n), uniform(-_ANGLE, _ANGLE, n))[:, None]
    fg, bg = uniform(*_FG, n, 3, 1, 1), uniform(*_BG, n, 3, 1, 1)
    # A 4x4 random field upsampled: smooth brightness variation shared by shape and background.
    coarse = torch.randn(n, 1, 4, 4, generator=g).mul_(_TEXTURE)
    texture = F.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    x = torch.randn(n, 3, SIZE, SIZE, generator=g).mul_(uniform(0.0, _NOISE, n, 1, 1, 1))
    x.add_(texture).add_(bg).addcmul_(fg - bg, mask)
    return _to_uint8(x)


def generate(n: int, seed: int, split: str = "train") -> tuple[Tensor, Tensor]:
    """``n`` labelled images, x uint8 [n, 3, 32, 32] and y int64 [n] in [0, 10), exactly balanced
    when ``n`` is a multiple of 10; ``(seed, split, n)`` fixes them bit for bit."""
    if split not in SPLIT_STREAMS:
        raise ValueError(f"unknown split '{split}'; valid: {', '.join(SPLIT_STREAMS)}")
    # Independent streams per (seed, split): the test set does not depend on the train set's size.
    state = np.random.SeedSequence([seed, SPLIT_STREAMS[split]]).generate_state(1, dtype=np.uint64)
    g = torch.Generator().manual_seed(int(state[0]))
    y = (torch.arange(n) % NUM_CLASSES)[torch.randperm(n, generator=g)]
    # Fixed-size chunks keep the float work in cache (several times faster than one big batch) and
    # keep the random stream, hence the output, independent of the machine.
    # One thread (same results): on small chunks intra-op threads gain little, and when another
    # process holds a core they wait on each other at every op, 10x slower on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.cat([_render(chunk, g) for chunk in y.split(_CHUNK)])
    finally:
        torch.set_num_threads(threads)
    return x, y


def prototypes() -> Tensor:
    """Clean class prototypes: uint8 [10, 3, 32, 32]; shape ``k`` centred, scale 1, mean colours."""
    k = torch.arange(NUM_CLASSES)
    zeros, ones = torch.zeros(NUM_CLASSES), torch.ones(NUM_CLASSES)
    mask = masks(k, zeros, zeros, ones, zeros)[:, None].expand(-1, 3, -1, -1)
    fg, bg = sum(_FG) / 2, sum(_BG) / 2  # the mean colours of the data
    return _to_uint8(bg + (fg - bg) * mask)


def prepare_synthetic(out: Path, seed: int, n_train: int, n_test: int) -> None:
    """Write the data set atomically as a prepared tensor file (format of ``robust.data``)."""
    x_train, y_train = generate(n_train, seed, "train")
    x_test, y_test = generate(n_test, seed, "test")
    data = {
        "dataset": "synthetic",
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "class_names": list(CLASS_NAMES),
        "prototypes": prototypes(),
        "meta": {"seed": int(seed), "n_train": int(n_train), "n_test": int(n_test)},
    }
    torch_save(sealed(data), out)
