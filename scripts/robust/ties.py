"""Relabelling of near ties: the base classifier "float32 label where the low-precision top-2 logit
margin is below ``tie_margin``, low-precision label elsewhere", for ``robust.fastcert``.

Low precision (bf16/fp16 autocast) flips labels where the two largest logits nearly tie. Relabelling
those samples by an IEEE float32 pass defines one fixed function of the noisy input, so counts stay
exact binomial samples. In the batch's own (possibly compiled) pass, :func:`recheck` re-runs a fixed
number of rows, the smallest margins, at static shapes; the near ties beyond that number (missed)
are relabelled by :func:`relabel_missed` after the block's counts are read back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class TieStats:
    """What a tie margin did, summed over the calls it is passed to: of ``samples`` noisy samples,
    ``near_ties`` had a low-precision top-2 margin below it and took a float32 pass's label;
    ``changed`` of those got a label other than the low-precision one."""

    samples: int = 0
    near_ties: int = 0
    changed: int = 0


def recheck(
    model: nn.Module,
    batch: Tensor,
    logits: Tensor,
    valid: Tensor,
    tie_margin: float,
    rows_per_batch: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Relabel the near ties of one batch that fit in ``rows_per_batch`` float32 rows.

    Args:
        model: the base classifier (run here in float32, outside any autocast region).
        batch: noisy inputs [b, C, H, W] float32, as forwarded. logits: their low-precision logits
            [b, K]. valid: [b] bool, False on padding rows (never near ties).
        tie_margin: in logits, > 0. rows_per_batch: rows re-run (static shapes).

    Returns:
        labels [b] int64 (float32 labels on the relabelled rows); margin [b] float32, the top-2
        margin, +inf on padding and on the rows relabelled here (so only missed near ties stay
        under ``tie_margin``); ties [3] int64: near ties, those relabelled here, and those of
        them whose label changed.
    """
    labels = logits.argmax(dim=1)
    top2 = logits.float().topk(2, dim=1).values
    margin = torch.where(valid, top2[:, 0] - top2[:, 1], math.inf)
    rows = torch.topk(margin, min(rows_per_batch, len(margin)), largest=False).indices
    near, low = margin[rows] < tie_margin, labels[rows]
    exact = model(batch[rows]).argmax(dim=1)
    labels = labels.scatter(0, rows, torch.where(near, exact, low))
    counts = [(margin < tie_margin).sum(), near.sum(), (near & (exact != low)).sum()]
    margin = margin.scatter(0, rows, torch.where(near, math.inf, margin[rows]))
    return labels, margin, torch.stack(counts)


def relabel_missed(
    model: nn.Module,
    batches: Callable[[], Iterator[tuple[Tensor, Tensor]]],
    counts: Tensor,
    kept: list[tuple[Tensor, Tensor]],
    missed: Tensor,
    num_classes: int,
    tie_margin: float,
) -> int:
    """Give the missed near ties their float32 label, after the block's counts were read back.

    Args:
        model: the base classifier, run eagerly in float32 on those rows only (IEEE: the caller
            holds ``robust.precision.ieee_fp32``).
        batches: the block's (batch, segment) pairs as forwarded, drawn again (identical noise).
        counts: the block's flat counts [(segments + 1) * K], corrected in place.
        kept: per batch, the (labels, margin) that :func:`recheck` returned.
        missed: per batch, how many near ties its pass left (int64 [batches], on the host).
        num_classes: K. tie_margin: as in :func:`recheck`.

    Returns:
        How many of those labels changed.
    """
    last, changed = int(missed.nonzero().max()), 0
    for i, (batch, segment) in enumerate(batches()):
        if i > last:  # no noise to draw past the last batch that needs it
            break
        if not missed[i]:
            continue
        labels, margin = kept[i]
        near = (margin < tie_margin).nonzero().squeeze(1)
        low = labels[near]
        exact = model(batch[near]).argmax(dim=1)  # float32, IEEE (caller's context)
        rows = segment[near] * num_classes
        counts.index_add_(0, rows + low, torch.full_like(low, -1))  # only the relabelled rows move
        counts.index_add_(0, rows + exact, torch.ones_like(exact))
        changed += int((exact != low).sum())
    return changed
