"""Cohen et al.'s CERTIFY for many images at once: same noise, same answers, fewer passes and syncs.

``Smooth.certify`` runs one image at a time and reads every count back to the host. Here the noise
chunks of several images (both the selection and the estimation stream) are packed into one static
batch buffer, so one forward pass can mix images; per-sample labels are counted on the device with
``index_add_`` (``torch.bincount`` would read its maximum back to the host on CUDA) and the host
reads the counts once per block of images.

Exactness: every chunk is drawn exactly as ``Smooth`` draws it (a generator seeded by
``_chunk_seed(seed, idx, stream, chunk)``, a full ``chunk_size`` draw, multiplied by sigma, then x
added in float32), so the noisy inputs are bitwise those of ``Smooth``. With ``precision="fp32"``,
``channels_last=False`` and no compilation, the answers equal ``Smooth.certify`` image by image for
any batch size, as long as the base classifier's per-sample outputs do not depend on the batch they
are in (true on the CPU; on GPUs autotuned kernels can flip a near-tied argmax in rare samples).
``"bf16"`` (or ``"fp16"``) runs the forward pass under bfloat16 (float16) autocast on the float32
noisy images: a different but fixed base classifier, so the counts remain exact binomial samples
and the guarantee holds for it. float16 keeps 3 more mantissa bits than bfloat16 (closer to the
fp32 labels, same tensor-core peak on recent GPUs) but can overflow above 65504. Low precision flips
labels where the top two logits nearly tie; a ``tie_margin`` re-runs those samples in float32 (a
fixed base classifier again), which brings the labels back to fp32's at a small cost. "fp32" is
IEEE float32 (TF32 off, ``robust.precision.ieee_fp32``), also inside ``Smooth``.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from robust import ties
from robust.precision import AUTOCAST, PRECISIONS, ieee_fp32
from robust.smoothing import ABSTAIN, STREAMS, _chunk_seed
from robust.stats import clopper_pearson_lower, norm_ppf
from robust.ties import TieStats

__all__ = [
    "PRECISIONS",
    "TieStats",
    "certify_from_counts",
    "certify_many",
    "noisy_batches",
    "sample_counts_many",
]

# Rows per batch re-run in float32 under a tie margin (static shapes); the near ties of a batch
# beyond this share get their float32 labels afterwards, eagerly (same answers, only slower).
RECHECK_SHARE = 1 / 16
# Compiled forwards per model and settings, so repeated calls reuse one compilation.
_COMPILED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, Callable]] = weakref.WeakKeyDictionary()


def _stream_id(stream: str | int) -> int:
    stream_id = STREAMS.get(stream, stream) if isinstance(stream, str) else stream
    if not isinstance(stream_id, int) or stream_id < 0:
        raise ValueError(f"unknown noise stream {stream!r}; valid: {', '.join(STREAMS)}")
    return stream_id


def noisy_batches(
    xs: Tensor,
    idxs: Sequence[int],
    sigma: float,
    streams: Sequence[tuple[str | int, int]],
    batch_size: int,
    chunk_size: int,
    seed: int,
) -> Iterator[tuple[Tensor, Tensor, int]]:
    """Pack the noisy copies of all (image, stream) segments into batches of ``batch_size``.

    Args:
        xs: images [B, C, H, W], float32 in [0, 1], on the device that draws the noise.
        idxs: dataset index of each image (seeds its noise, as ``Smooth``'s ``idx``).
        sigma: noise std in [0, 1] pixel units.
        streams: (stream name or id, samples) per image, e.g. (("selection", 100), ("estimation",
            100_000)).
        batch_size, chunk_size, seed: as in ``Smooth`` (chunk_size and seed fix the noise).

    Yields:
        (buffer [batch_size, C, H, W] float32, segment [batch_size] int64, filled). Rows below
        ``filled`` hold x + noise; row r belongs to segment image * len(streams) + stream position.
        Rows from ``filled`` on are padding with segment B * len(streams). The same buffers are
        reused: consume a batch before asking for the next one.
    """
    pad_segment = len(idxs) * len(streams)
    buffer = torch.zeros((batch_size, *xs.shape[1:]), dtype=torch.float32, device=xs.device)
    segment = torch.full((batch_size,), pad_segment, dtype=torch.int64, device=xs.device)
    filled = 0
    for image, idx in enumerate(idxs):
        for position, (stream, num) in enumerate(streams):
            stream_id, label = _stream_id(stream), image * len(streams) + position
            for chunk in range(math.ceil(num / chunk_size)):
                generator = torch.Generator(device=xs.device)
                generator.manual_seed(_chunk_seed(seed, idx, stream_id, chunk))
                # The whole chunk is drawn even if only a prefix is used: a shorter draw would give
                # other numbers. Same ops, same order as Smooth: randn, * sigma, then + x.
                noise = torch.randn(
                    (chunk_size, *xs.shape[1:]), generator=generator, device=xs.device,
                    dtype=torch.float32,
                ).mul_(sigma)  # fmt: skip
                used, start = min(chunk_size, num - chunk * chunk_size), 0
                while start < used:
                    take = min(used - start, batch_size - filled)
                    torch.add(
                        noise[start : start + take], xs[image], out=buffer[filled : filled + take]
                    )
                    segment[filled : filled + take].fill_(label)
                    filled, start = filled + take, start + take
                    if filled == batch_size:
                        yield buffer, segment, filled
                        filled = 0
    if filled:
        segment[filled:].fill_(pad_segment)
        yield buffer, segment, filled


def _make_forward(
    model: nn.Module,
    device_type: str,
    precision: str,
    channels_last: bool,
    compile_mode: str | None,
    tie_margin: float,
    recheck: int,
) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]:
    """(batch [b, C, H, W] float32, valid [b] bool) -> (labels [b] int64, margin [b], ties [3]).

    Without a recheck (``recheck`` 0) the labels are the forward pass's at ``precision`` (margin and
    ties are then placeholders); with one, :func:`robust.ties.recheck` relabels the near ties it
    can. Optionally compiled (static shapes: ``recheck`` is fixed per forward).
    """
    dtype = AUTOCAST.get(precision)

    def forward(batch: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        # Autocast casts at the first matmul/conv: noise was drawn and added in float32 before.
        with torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            logits = model(batch)
        if recheck:
            return ties.recheck(model, batch, logits, valid, tie_margin, recheck)
        labels = logits.argmax(dim=1)
        return labels, labels[:0], labels[:0]  # empty views: no allocation per batch

    if compile_mode is None:
        return forward
    cache = _COMPILED.setdefault(model, {})
    key = (device_type, precision, channels_last, compile_mode, tie_margin, recheck)
    if key not in cache:
        mode = None if compile_mode == "default" else compile_mode
        cache[key] = torch.compile(forward, dynamic=False, mode=mode)
    return cache[key]


def _check(xs, idxs, num_classes, sigma, streams, batch_size, chunk_size, precision, tie_margin):
    """ValueError naming the first bad argument of :func:`sample_counts_many`."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; valid: {', '.join(PRECISIONS)}")
    if xs.dim() != 4 or xs.dtype != torch.float32 or len(idxs) != xs.shape[0]:
        raise ValueError(
            f"need float32 xs [B, C, H, W] and B idxs, got {tuple(xs.shape)}, {len(idxs)}"
        )
    if min((num for _, num in streams), default=0) < 1 or min(batch_size, chunk_size) < 1:
        raise ValueError(
            f"need samples, batch_size, chunk_size >= 1; got {streams}, {batch_size}, {chunk_size}"
        )
    if not sigma > 0 or min(idxs, default=0) < 0 or num_classes < 2:
        raise ValueError(f"need sigma > 0, idxs >= 0, num_classes >= 2; got {sigma}, {num_classes}")
    if not tie_margin >= 0:  # also rejects NaN
        raise ValueError(f"need tie_margin >= 0, got {tie_margin}")


@torch.no_grad()
def sample_counts_many(
    model: nn.Module,
    xs: Tensor,
    idxs: Sequence[int],
    num_classes: int,
    sigma: float,
    streams: Sequence[tuple[str | int, int]],
    batch_size: int,
    chunk_size: int,
    seed: int,
    precision: str = "fp32",
    channels_last: bool = False,
    compile_mode: str | None = None,
    images_per_block: int | None = None,
    tie_margin: float = 0.0,
    stats: TieStats | None = None,
) -> Tensor:
    """Top-1 label counts of the base classifier on every (image, stream) noise segment.

    Args:
        model: base classifier, images [b, C, H, W] in [0, 1] -> logits [b, num_classes]; on the
            device of ``xs``; its train/eval mode is left alone (use eval). ``channels_last=True``
            converts its 4-D weights to channels_last in place (same function, faster convs).
        xs: images [B, C, H, W], float32 in [0, 1]. idxs: their dataset indices (B ints >= 0).
        num_classes: K. sigma: noise std (> 0). streams: (stream, samples) pairs, as in
            :func:`noisy_batches`. batch_size: noisy copies per forward pass (speed only).
        chunk_size, seed: noise chunking and seed (must match ``Smooth`` to get its noise).
        precision: "fp32" (IEEE: no TF32, see ``robust.precision``), "bf16" or "fp16" (autocast
            of the forward pass; noise stays float32).
        compile_mode: None (eager), "default" or a ``torch.compile`` mode such as
            "reduce-overhead" (CUDA graphs) or "max-autotune". When compiled or on CUDA, every
            batch, the last one padded and masked, has the static shape [batch_size, C, H, W],
            so one compilation (and one cuDNN autotuning) serves all.
        images_per_block: images whose counts are read back together (None: all B): the only
            host synchronisation, once per block.
        tie_margin: in logits, >= 0, bf16/fp16 only (ignored for fp32). A noisy sample whose
            low-precision top-2 logit margin is below it is labelled by a float32 forward pass
            instead. The base classifier is then the fixed function "float32 label on near ties,
            low-precision label elsewhere", so the counts stay exact binomial samples; near ties
            are where low precision flips labels. Up to ``RECHECK_SHARE`` of each batch is
            re-run in the batch's pass (static shapes); a batch with more near ties has the rest
            relabelled after its block is read back (its noise drawn again).
        stats: if given, what the tie margin did is added to it (unchanged without a margin).

    Returns:
        int64 counts [B, len(streams), K] on the CPU; independent of batch_size,
        images_per_block and of the recheck limit.
    """
    _check(xs, idxs, num_classes, sigma, streams, batch_size, chunk_size, precision, tie_margin)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    out_shape = tuple(model(xs[:1]).shape)  # eager, unpadded: catches a wrong head early
    if out_shape != (1, num_classes):
        raise ValueError(f"base classifier returned shape {out_shape}, expected (1, {num_classes})")
    rechecks = tie_margin > 0 and precision != "fp32"
    forward = _make_forward(
        model, xs.device.type, precision, channels_last, compile_mode, tie_margin,
        max(1, math.ceil(batch_size * RECHECK_SHARE)) if rechecks else 0,
    )  # fmt: skip
    block = len(idxs) if images_per_block is None else max(1, images_per_block)
    # One input shape for compiled graphs and for cuDNN autotuning (a new shape = a new search).
    static = compile_mode is not None or xs.device.type == "cuda"
    results = []
    with ieee_fp32():
        for first in range(0, len(idxs), block):
            ids = list(idxs[first : first + block])
            batches = functools.partial(
                _forwarded_batches, static, xs[first : first + block], ids, sigma, streams,
                batch_size, chunk_size, seed,
            )  # fmt: skip
            segments = len(ids) * len(streams)
            counts, kept, tie_counts = _count_block(
                forward, batches, segments, num_classes, xs.device
            )
            missed = tie_counts[:, 0] - tie_counts[:, 1]
            changed = int(tie_counts[:, 2].sum())
            if missed.any():  # more near ties than recheck rows in some batches: finish those
                fix = (model, batches, counts, kept, missed, num_classes, tie_margin)
                changed += ties.relabel_missed(*fix)
            if stats is not None and rechecks:
                stats.samples += len(ids) * sum(num for _, num in streams)
                stats.near_ties += int(tie_counts[:, 0].sum())
                stats.changed += changed
            results.append(counts.cpu()[: segments * num_classes])
    return torch.cat(results).view(len(idxs), len(streams), num_classes)


def _forwarded_batches(static: bool, *args) -> Iterator[tuple[Tensor, Tensor]]:
    """:func:`noisy_batches` (``*args``) as forwarded: (batch, segment) with all rows (static
    shapes) or only the filled ones."""
    for batch, segment, filled in noisy_batches(*args):
        if not static and filled < len(batch):  # skip the padding work
            yield batch[:filled], segment[:filled]
        else:
            yield batch, segment


def _count_block(forward, batches, segments: int, num_classes: int, device):
    """One block: flat counts [(segments + 1) * K] on the device (the last K swallow padding
    rows) and, when rechecking, each batch's (labels, margin) and its tie counts [batches, 3] on
    the host (see ``robust.ties.recheck``; read back once per block, and the counts follow
    without waiting on the device again)."""
    counts = torch.zeros((segments + 1) * num_classes, dtype=torch.int64, device=device)
    kept, tie_counts, ones = [], [], None
    for batch, segment in batches():
        labels, margin, batch_ties = forward(batch, segment < segments)
        ones = torch.ones_like(labels) if ones is None else ones  # the first batch is the largest
        counts.index_add_(0, segment * num_classes + labels, ones[: len(labels)])
        if len(margin):  # copies: CUDA-graph outputs are overwritten by the next replay
            kept.append((labels.clone(), margin.clone()))
            tie_counts.append(batch_ties.clone())
    if not tie_counts:  # no recheck: nothing to read back before the counts
        return counts, kept, torch.zeros((0, 3), dtype=torch.int64)
    return counts, kept, torch.stack(tie_counts).cpu()


def certify_from_counts(
    counts: Tensor, n: int, alpha: float, sigma: float
) -> list[tuple[int, float]]:
    """CERTIFY's decision from counts [B, 2, K] (selection, estimation), as ``Smooth.certify``.

    Returns:
        Per image (c_a_hat, sigma * Phi^-1(p_a_lower)), or (ABSTAIN, 0.0) when p_a_lower < 1/2.
    """
    answers = []
    for selection, estimation in counts.tolist():
        c_a_hat = max(range(len(selection)), key=selection.__getitem__)  # first maximum on ties
        p_a_lower = clopper_pearson_lower(estimation[c_a_hat], n, alpha)
        answers.append(
            (ABSTAIN, 0.0) if p_a_lower < 0.5 else (c_a_hat, sigma * norm_ppf(p_a_lower))
        )
    return answers


def certify_many(
    model: nn.Module,
    xs: Tensor,
    idxs: Sequence[int],
    num_classes: int,
    sigma: float,
    n0: int,
    n: int,
    alpha: float,
    batch_size: int,
    chunk_size: int,
    seed: int,
    precision: str = "fp32",
    channels_last: bool = False,
    compile_mode: str | None = None,
    images_per_block: int | None = None,
    tie_margin: float = 0.0,
    stats: TieStats | None = None,
) -> list[tuple[int, float]]:
    """CERTIFY (Cohen et al.) for images xs [B, C, H, W], with ``Smooth.certify``'s noise.

    Arguments as in :func:`sample_counts_many`; n0 selection and n estimation samples per image,
    alpha the failure probability. In fp32 (eager, contiguous) the answers equal, for every i,
    ``Smooth(model, num_classes, sigma, chunk_size, seed).certify(xs[i], n0, n, alpha, b, idxs[i])``
    (any batch size b).

    Returns:
        One (prediction or ABSTAIN, radius in pixel units) per image, in order.
    """
    counts = sample_counts_many(
        model, xs, idxs, num_classes, sigma, (("selection", n0), ("estimation", n)), batch_size,
        chunk_size, seed, precision, channels_last, compile_mode, images_per_block, tie_margin,
        stats,
    )  # fmt: skip
    return certify_from_counts(counts, n, alpha, sigma)
