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
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robust.precision import AUTOCAST, PRECISIONS, ieee_fp32
from robust.smoothing import ABSTAIN, STREAMS, _chunk_seed
from robust.stats import clopper_pearson_lower, norm_ppf

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


@dataclass
class TieStats:
    """What a tie margin did, summed over the calls it is passed to: of ``samples`` noisy samples,
    ``near_ties`` had a low-precision top-2 margin below it and took a float32 pass's label;
    ``changed`` of those got a label other than the low-precision one."""

    samples: int = 0
    near_ties: int = 0
    changed: int = 0


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
    ties are then placeholders). With one, the ``recheck`` valid rows of smallest top-2 logit
    margin (low precision, float32 units; +inf on invalid rows) are run again in float32, and
    those whose margin is below ``tie_margin`` take the float32 label. ``ties`` (int64) counts the
    valid rows under the margin, those of them relabelled here (the rest, missed, keep their
    low-precision labels for now) and the relabelled rows whose label changed; the returned
    margin is +inf on the rows relabelled here, so that only missed rows stay under the margin.
    Optionally compiled (static shapes: ``recheck`` is fixed per forward).
    """
    dtype = AUTOCAST.get(precision)

    def forward(batch: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        # Autocast casts at the first matmul/conv: noise was drawn and added in float32 before.
        with torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            logits = model(batch)
        labels = logits.argmax(dim=1)
        if not recheck:
            return labels, labels[:0], torch.zeros(3, dtype=torch.int64, device=batch.device)
        top2 = logits.float().topk(2, dim=1).values
        margin = torch.where(valid, top2[:, 0] - top2[:, 1], math.inf)  # padding never rechecks
        rows = torch.topk(margin, min(recheck, len(margin)), largest=False).indices
        near, low = margin[rows] < tie_margin, labels[rows]
        exact = model(batch[rows]).argmax(dim=1)  # float32: outside the autocast region
        labels = labels.scatter(0, rows, torch.where(near, exact, low))
        ties = [(margin < tie_margin).sum(), near.sum(), (near & (exact != low)).sum()]
        # Rows relabelled here leave the margin test: the after-block pass takes only missed ones.
        margin = margin.scatter(0, rows, torch.where(near, math.inf, margin[rows]))
        return labels, margin, torch.stack(ties)

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
                noisy_batches, xs[first : first + block], ids, sigma, streams, batch_size,
                chunk_size, seed,
            )  # fmt: skip
            segments = len(ids) * len(streams)
            counts, kept, ties = _count_block(
                forward, batches, segments, num_classes, static, xs.device
            )
            missed, changed = ties[:, 0] - ties[:, 1], int(ties[:, 2].sum())
            if missed.any():  # more near ties than recheck rows in some batches: finish those
                fix = (model, batches, counts, kept, missed, num_classes, static, tie_margin)
                changed += _relabel_missed(*fix)
            if stats is not None and rechecks:
                stats.samples += len(ids) * sum(num for _, num in streams)
                stats.near_ties += int(ties[:, 0].sum())
                stats.changed += changed
            results.append(counts.cpu()[: segments * num_classes])
    return torch.cat(results).view(len(idxs), len(streams), num_classes)


def _rows(batch: Tensor, segment: Tensor, filled: int, static: bool) -> tuple[Tensor, Tensor]:
    """The batch as forwarded: all rows (static shapes) or the filled ones."""
    if not static and filled < len(batch):  # skip the padding work
        return batch[:filled], segment[:filled]
    return batch, segment


def _count_block(forward, batches, segments: int, num_classes: int, static: bool, device):
    """One block: flat counts [(segments + 1) * K] on the device (the last K swallow padding
    rows) and, when rechecking, each batch's (labels, margin) and its tie counts [batches, 3] on
    the host (see ``_make_forward``; read back once per block, and the counts follow without
    waiting on the device again)."""
    counts = torch.zeros((segments + 1) * num_classes, dtype=torch.int64, device=device)
    kept, ties, ones = [], [], None
    for batch, segment, filled in batches():
        batch, segment = _rows(batch, segment, filled, static)
        labels, margin, batch_ties = forward(batch, segment < segments)
        ones = torch.ones_like(labels) if ones is None else ones  # the first batch is the largest
        counts.index_add_(0, segment * num_classes + labels, ones[: len(labels)])
        if len(margin):  # copies: CUDA-graph outputs are overwritten by the next replay
            kept.append((labels.clone(), margin.clone()))
            ties.append(batch_ties.clone())
    if not ties:  # no recheck: nothing to read back before the counts
        return counts, kept, torch.zeros((0, 3), dtype=torch.int64)
    return counts, kept, torch.stack(ties).cpu()


def _relabel_missed(model, batches, counts, kept, missed, num_classes, static, tie_margin) -> int:
    """Give the missed near ties (margin still below ``tie_margin``: the rows the batch's pass did
    not relabel) their float32 label (eager, only those rows), correcting ``counts`` in place; the
    noise is drawn again, identically. Returns how many of those labels changed."""
    last, changed = int(missed.nonzero().max()), 0
    for i, (batch, segment, filled) in enumerate(batches()):
        if i > last:  # no noise to draw past the last batch that needs it
            break
        if not missed[i]:
            continue
        batch, segment = _rows(batch, segment, filled, static)
        labels, margin = kept[i]
        near = (margin < tie_margin).nonzero().squeeze(1)
        exact = labels.clone()
        exact[near] = model(batch[near]).argmax(dim=1)  # float32, IEEE (caller's context)
        for sign, table in ((-1, labels), (1, exact)):
            counts.index_add_(0, segment * num_classes + table, torch.full_like(table, sign))
        changed += int((exact != labels).sum())
    return changed


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
