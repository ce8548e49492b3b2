"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019): Monte Carlo PREDICT and CERTIFY.

The smoothed classifier is g(x) = argmax_c P(f(x + eps) = c) with eps ~ N(0, sigma^2 I) in
pixel units ([0, 1] images, not clipped after the noise, as in Cohen et al.; normalisation is the
base classifier's first layer).

One noise draw: sample i of an image's stream (selection, estimation, predict) comes from chunk
i // chunk_size, drawn whole by its own ``torch.Generator`` on the image's device, seeded from
(seed, idx, stream, chunk). Noisy copies of several images are packed into batches of
``batch_size``, so neither the batch size nor how images are grouped changes a count. A chunk holds
chunk_size * x.numel() float32 values (1000 ImageNet samples: 0.6 GB; lower it for large images).

Precision: "fp32" is IEEE float32 (TF32 off, as on the GPUs of Cohen et al.); "bf16" runs the base
classifier under bfloat16 autocast (noise stays float32): another fixed base classifier, whose
counts are exact binomial samples, so its certificate is exact for it but not the fp32 network's.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from robust.stats import binom_test_two_sided, clopper_pearson_lower, norm_ppf

__all__ = ["ABSTAIN", "PRECISIONS", "STREAMS", "Smooth", "certify_from_counts"]

ABSTAIN = -1
PRECISIONS = ("fp32", "bf16")
# Independent noise streams per image; certify must not reuse selection noise for estimation.
STREAMS: dict[str, int] = {"selection": 0, "estimation": 1, "predict": 2}


def chunk_seed(seed: int, idx: int, stream: int, chunk: int) -> int:
    """63-bit generator seed: a hash of (seed, idx, stream, chunk), so nearby tuples differ."""
    key = f"robust.smoothing:{seed}:{idx}:{stream}:{chunk}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def noisy_batches(
    xs: Tensor, idxs: Sequence[int], streams: Sequence[tuple[str, int]], sigma: float,
    batch_size: int, chunk_size: int, seed: int,
) -> Iterator[tuple[Tensor, Tensor]]:  # fmt: skip
    """Noisy copies of images xs [B, C, H, W] (dataset indices idxs), image by image and for each
    (stream name, samples) of ``streams`` in turn, in batches (x + noise [b, C, H, W] float32,
    segment [b] int64) with b <= batch_size and segment = image * len(streams) + stream position."""
    pieces: list[tuple[Tensor, int]] = []
    filled = 0
    for image, idx in enumerate(idxs):
        for position, (stream, num) in enumerate(streams):
            for chunk in range(math.ceil(num / chunk_size)):
                generator = torch.Generator(device=xs.device)
                generator.manual_seed(chunk_seed(seed, idx, STREAMS[stream], chunk))
                # The whole chunk is drawn even when only a prefix is used: a shorter draw gives
                # other numbers. Order of operations fixed: randn, * sigma, + x.
                shape = (chunk_size, *xs.shape[1:])
                noise = torch.randn(
                    shape, generator=generator, device=xs.device, dtype=torch.float32
                )
                noise.mul_(sigma)
                piece = noise[: min(chunk_size, num - chunk * chunk_size)].add_(xs[image])
                while len(piece):
                    take = min(len(piece), batch_size - filled)
                    pieces.append((piece[:take], image * len(streams) + position))
                    piece, filled = piece[take:], filled + take
                    if filled == batch_size:
                        yield _join(pieces)
                        pieces, filled = [], 0
    if pieces:
        yield _join(pieces)


def _join(pieces: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor]:
    """One batch of noisy rows and its segment ids from (rows, segment) pieces."""
    batch = pieces[0][0] if len(pieces) == 1 else torch.cat([p for p, _ in pieces])
    segment = [torch.full((len(p),), s, dtype=torch.int64, device=p.device) for p, s in pieces]
    return batch, torch.cat(segment)


@contextmanager
def ieee_fp32() -> Iterator[None]:
    """Within the block, float32 convolutions and matrix products use no TF32 tensor cores
    (PyTorch allows TF32 in cuDNN convolutions by default). Restores the caller's settings."""
    switches = [torch.backends.cudnn.conv, torch.backends.cuda.matmul]
    saved = [space.fp32_precision for space in switches]
    try:
        for space in switches:
            space.fp32_precision = "ieee"
        yield
    finally:
        for space, value in zip(switches, saved, strict=True):
            space.fp32_precision = value


def certify_from_counts(
    selection: Sequence[int], estimation: Sequence[int], n: int, alpha: float, sigma: float
) -> tuple[int, float]:
    """CERTIFY's decision from the counts [K] of the n0 selection and n estimation samples:
    (c_a_hat, sigma * Phi^-1(p_a_lower)), or (ABSTAIN, 0.0) when p_a_lower < 1/2."""
    c_a_hat = max(range(len(selection)), key=selection.__getitem__)  # first maximum on ties
    p_a_lower = clopper_pearson_lower(estimation[c_a_hat], n, alpha)
    return (ABSTAIN, 0.0) if p_a_lower < 0.5 else (c_a_hat, sigma * norm_ppf(p_a_lower))


def predict_from_counts(counts: Sequence[int], alpha: float) -> int:
    """PREDICT's decision: the top class, or ABSTAIN unless the two-sided binomial test of the top
    two counts n_a >= n_b against p = 1/2 rejects at level alpha (Hung & Fithian)."""
    top2 = sorted(range(len(counts)), key=lambda c: -counts[c])[:2]  # stable: lowest index first
    n_a, n_b = counts[top2[0]], counts[top2[1]]
    return ABSTAIN if binom_test_two_sided(n_a, n_a + n_b, 0.5) > alpha else top2[0]


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:  # before any sample is drawn
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")


class Smooth:
    """Smoothed classifier with noise std ``sigma`` (pixel units) around ``base_classifier``
    (float32 images [b, C, H, W] -> logits [b, num_classes]), which runs under no_grad in the
    train/eval mode the caller set. chunk_size, seed and precision: see the module docstring."""

    def __init__(
        self, base_classifier: nn.Module, num_classes: int, sigma: float, chunk_size: int = 1000,
        seed: int = 0, precision: str = "fp32",
    ) -> None:  # fmt: skip
        valid = num_classes >= 2 and sigma > 0 and chunk_size >= 1 and seed >= 0
        if not valid or precision not in PRECISIONS:
            raise ValueError(
                f"need num_classes >= 2, sigma > 0, chunk_size >= 1, seed >= 0, precision in "
                f"{PRECISIONS}; got {num_classes=}, {sigma=}, {chunk_size=}, {seed=}, {precision=}"
            )
        self.base_classifier, self.num_classes, self.sigma = base_classifier, num_classes, sigma
        self.chunk_size, self.seed, self.precision = chunk_size, seed, precision

    def sample_counts(
        self, xs: Tensor, idxs: Sequence[int], streams: Sequence[tuple[str, int]], batch_size: int
    ) -> Tensor:
        """int64 counts [B, len(streams), num_classes] on the CPU of the base classifier's top-1
        labels on the noisy copies of images xs [B, C, H, W] (on its device; dataset indices idxs
        select the noise), for each (name in ``STREAMS``, samples) of ``streams``. batch_size
        (copies per forward pass) does not change the counts."""
        if xs.dim() != 4 or len(idxs) != len(xs) or min(idxs, default=0) < 0:
            raise ValueError(f"need xs [B, C, H, W] and B indices >= 0, got {tuple(xs.shape)}")
        if batch_size < 1 or min(num for _, num in streams) < 1:
            raise ValueError(f"need batch_size and samples >= 1, got {batch_size}, {streams}")
        unknown = [name for name, _ in streams if name not in STREAMS]
        if unknown:
            raise ValueError(f"unknown noise stream {unknown[0]!r}; valid: {', '.join(STREAMS)}")
        k = self.num_classes
        counts = torch.zeros(len(xs) * len(streams) * k, dtype=torch.int64, device=xs.device)
        bf16 = self.precision == "bf16"
        autocast = torch.autocast(xs.device.type, dtype=torch.bfloat16, enabled=bf16)
        with torch.no_grad(), ieee_fp32(), autocast:
            for batch, segment in noisy_batches(
                xs, idxs, streams, self.sigma, batch_size, self.chunk_size, self.seed
            ):
                logits = self.base_classifier(batch)
                if logits.shape != (len(batch), k):
                    raise ValueError(
                        f"base classifier returned shape {tuple(logits.shape)}, "
                        f"expected ({len(batch)}, {k})"
                    )
                # index_add_ stays on the device; bincount would read its maximum back on CUDA.
                labels = segment * k + logits.argmax(dim=1)
                counts.index_add_(0, labels, torch.ones_like(labels))
        return counts.cpu().view(len(xs), len(streams), k)

    def predict(
        self, xs: Tensor, idxs: Sequence[int], n: int, alpha: float, batch_size: int
    ) -> list[int]:
        """PREDICT for images xs [B, C, H, W]: g(x), or ABSTAIN; each answer is wrong (neither
        g(x) nor ABSTAIN) with probability <= alpha. n noisy samples per image."""
        _check_alpha(alpha)
        counts = self.sample_counts(xs, idxs, (("predict", n),), batch_size)
        return [predict_from_counts(c[0], alpha) for c in counts.tolist()]

    def certify(
        self, xs: Tensor, idxs: Sequence[int], n0: int, n: int, alpha: float, batch_size: int
    ) -> list[tuple[int, float]]:
        """CERTIFY for images xs [B, C, H, W]: per image a class and an L2 radius (pixel units).

        With probability >= 1 - alpha over the noise, a non-abstaining answer (c, R) has g(x') = c
        for all ||x' - x||_2 < R. n0 samples select the guess c_a_hat, n fresh samples estimate
        p_a_lower. Returns (c_a_hat, sigma * Phi^-1(p_a_lower)) or (ABSTAIN, 0.0) per image.
        """
        _check_alpha(alpha)
        streams = (("selection", n0), ("estimation", n))
        counts = self.sample_counts(xs, idxs, streams, batch_size)
        return [certify_from_counts(s, e, n, alpha, self.sigma) for s, e in counts.tolist()]
