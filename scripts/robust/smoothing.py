"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019): Monte Carlo PREDICT and CERTIFY.

The smoothed classifier is g(x) = argmax_c P(f(x + eps) = c) with eps ~ N(0, sigma^2 I) in
pixel units ([0, 1] images; normalisation is the base classifier's first layer). Noisy copies
are not clipped to [0, 1], as in Cohen et al.

Noise is reproducible and independent of ``batch_size``: sample i of a stream comes from chunk
i // chunk_size, and every chunk is drawn from its own ``torch.Generator`` on the image's device,
seeded from (seed, idx, stream, chunk). Batches are slices of the concatenated chunk stream, so
batch size changes speed only. A chunk holds chunk_size * x.numel() float32 values; lower
``chunk_size`` for large images (ImageNet: 1000 chunks of 3x224x224 take 0.6 GB). The base
classifier runs in IEEE float32 (no TF32 tensor cores, ``robust.precision.ieee_fp32``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch
from torch import nn

from robust.precision import ieee_fp32
from robust.stats import binom_test_two_sided, clopper_pearson_lower, norm_ppf

__all__ = ["ABSTAIN", "STREAMS", "Smooth"]

ABSTAIN = -1

# Independent noise streams per image; certify must not reuse selection noise for estimation.
STREAMS: dict[str, int] = {"selection": 0, "estimation": 1, "predict": 2}


def _chunk_seed(seed: int, idx: int, stream: int, chunk: int) -> int:
    """63-bit generator seed: a hash of (seed, idx, stream, chunk), so nearby tuples differ."""
    key = f"robust.smoothing:{seed}:{idx}:{stream}:{chunk}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


class Smooth:
    """Smoothed classifier around ``base_classifier`` with Gaussian noise of std ``sigma``.

    Args:
        base_classifier: maps float32 images [B, C, H, W] to logits [B, num_classes]. Its
            train/eval mode is left untouched (the caller sets eval); it runs under no_grad.
        num_classes: number of classes of the base classifier (>= 2).
        sigma: noise standard deviation in [0, 1] pixel units (> 0).
        chunk_size: samples per independently seeded noise chunk.
        seed: base seed of all noise streams.
    """

    def __init__(
        self,
        base_classifier: nn.Module,
        num_classes: int,
        sigma: float,
        chunk_size: int = 1000,
        seed: int = 0,
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.base_classifier = base_classifier
        self.num_classes = num_classes
        self.sigma = float(sigma)
        self.chunk_size = chunk_size
        self.seed = seed

    def _noise_chunk(self, x: torch.Tensor, idx: int, stream: int, chunk: int) -> torch.Tensor:
        """sigma * N(0, I) of shape [chunk_size, *x.shape], float32 on x.device."""
        generator = torch.Generator(device=x.device)
        generator.manual_seed(_chunk_seed(self.seed, idx, stream, chunk))
        noise = torch.randn(
            (self.chunk_size, *x.shape), generator=generator, device=x.device, dtype=torch.float32
        )
        return noise.mul_(self.sigma)

    def _noisy_batches(
        self, x: torch.Tensor, num: int, batch_size: int, idx: int, stream: int
    ) -> Iterator[torch.Tensor]:
        """Yield x + noise for samples 0..num-1 of a stream, in batches of at most batch_size."""
        pending: list[torch.Tensor] = []  # drawn but unused noise, in stream order
        available, chunk, done = 0, 0, 0
        while done < num:
            want = min(batch_size, num - done)
            while available < want:
                pending.append(self._noise_chunk(x, idx, stream, chunk))
                available += self.chunk_size
                chunk += 1
            noise = pending[0] if len(pending) == 1 else torch.cat(pending)
            # Every sample's noise is used once, so adding x in place on the view is safe.
            yield noise[:want].add_(x)
            pending = [noise[want:]] if available > want else []
            available -= want
            done += want

    def sample_counts(
        self, x: torch.Tensor, num: int, batch_size: int, idx: int, stream: int | str
    ) -> torch.Tensor:
        """Count the base classifier's top-1 labels on ``num`` noisy copies of one image.

        Args:
            x: one image [C, H, W], float32 in [0, 1], on the base classifier's device.
            num: number of noisy samples (>= 1).
            batch_size: noisy copies per forward pass (speed only; results do not depend on it).
            idx: the image's dataset index (>= 0); selects the noise stream with ``seed``.
            stream: "selection", "estimation", "predict" (see ``STREAMS``) or a non-negative int.

        Returns:
            int64 counts [num_classes] on x.device (no host synchronisation happens here).
        """
        stream_id = STREAMS[stream] if isinstance(stream, str) and stream in STREAMS else stream
        if not isinstance(stream_id, int) or stream_id < 0:
            raise ValueError(f"unknown noise stream {stream!r}; valid: {', '.join(STREAMS)}")
        if num < 1 or batch_size < 1 or idx < 0:
            raise ValueError(
                f"need num >= 1, batch_size >= 1, idx >= 0; got {num}, {batch_size}, {idx}"
            )
        counts = torch.zeros(self.num_classes, dtype=torch.int64, device=x.device)
        with torch.no_grad(), ieee_fp32():
            for batch in self._noisy_batches(x, num, batch_size, idx, stream_id):
                logits = self.base_classifier(batch)
                if logits.shape != (batch.shape[0], self.num_classes):
                    raise ValueError(
                        f"base classifier returned shape {tuple(logits.shape)}, "
                        f"expected ({batch.shape[0]}, {self.num_classes})"
                    )
                # index_add_ stays on the device; bincount would read its maximum back on CUDA.
                labels = logits.argmax(dim=1)
                counts.index_add_(0, labels, torch.ones_like(labels))
        return counts

    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int, idx: int = 0) -> int:
        """PREDICT: g(x), or ABSTAIN; wrong (not g(x) and not ABSTAIN) with probability <= alpha.

        Two-sided binomial test of the top two counts n_a >= n_b against p = 1/2 (Hung & Fithian).

        Args:
            x: one image [C, H, W], float32 in [0, 1].
            n: number of noisy samples.
            alpha: error probability of the test.
            batch_size: noisy copies per forward pass.
            idx: the image's dataset index, seeds the noise.

        Returns:
            The predicted class, or ABSTAIN (-1).
        """
        counts = self.sample_counts(x, n, batch_size, idx, "predict").cpu()
        top2 = torch.argsort(counts, descending=True, stable=True)[:2].tolist()
        n_a, n_b = int(counts[top2[0]]), int(counts[top2[1]])
        if binom_test_two_sided(n_a, n_a + n_b, 0.5) > alpha:
            return ABSTAIN
        return top2[0]

    def certify(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int, idx: int = 0
    ) -> tuple[int, float]:
        """CERTIFY: a class and an L2 radius (pixel units) within which g is that class.

        With probability >= 1 - alpha over the noise, a non-abstaining answer (c, R) has g(x') = c
        for all ||x' - x||_2 < R.

        Args:
            x: one image [C, H, W], float32 in [0, 1].
            n0: samples used to select the guess c_a_hat.
            n: fresh samples used to estimate p_a_lower.
            alpha: failure probability.
            batch_size: noisy copies per forward pass.
            idx: the image's dataset index, seeds the noise.

        Returns:
            (c_a_hat, sigma * Phi^-1(p_a_lower)), or (ABSTAIN, 0.0) when p_a_lower < 1/2.
        """
        counts_selection = self.sample_counts(x, n0, batch_size, idx, "selection")
        c_a_hat = int(counts_selection.argmax())  # first maximum on ties, like numpy
        counts_estimation = self.sample_counts(x, n, batch_size, idx, "estimation")
        n_a = int(counts_estimation[c_a_hat])
        p_a_lower = clopper_pearson_lower(n_a, n, alpha)
        if p_a_lower < 0.5:
            return ABSTAIN, 0.0
        return c_a_hat, self.sigma * norm_ppf(p_a_lower)
