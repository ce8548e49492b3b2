"""What the certify and predict stages share: their arguments, the set-up of the smoothed classifier
over a test subset, and the resumable per-image loop.

A run is Cohen et al.'s protocol over test images idx = 0, skip, 2*skip, ... (at most max_images);
rows go to a ``RowLog`` whose fingerprint covers every argument that changes results and the
weights.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robust import cli

# Arguments that do not change any row: where things go and how the run is executed.
NOT_IN_FINGERPRINT = {"log", "device", "out", "summary", "record_time", "block"}


def add_arguments(p: argparse.ArgumentParser, with_n0: bool) -> None:
    """The flags of a certify (``with_n0``) or predict run."""
    p.add_argument("--run_id", required=True)
    p.add_argument("--model", required=True, help="model id")
    p.add_argument("--dataset", required=True)
    p.add_argument("--sigma", type=cli.positive_float, required=True, help="smoothing noise std")
    if with_n0:
        p.add_argument("--n0", type=cli.positive_int, required=True, help="selection samples")
    p.add_argument("--n", type=cli.positive_int, required=True, help="estimation samples")
    p.add_argument("--alpha", type=cli.probability, required=True, help="failure probability")
    p.add_argument("--batch", type=cli.positive_int, required=True, help="noisy copies per pass")
    p.add_argument("--chunk", type=cli.positive_int, required=True, help="noise chunk (samples)")
    p.add_argument("--skip", type=cli.positive_int, required=True)
    p.add_argument("--max_images", type=cli.positive_int, required=True)
    p.add_argument("--seed", type=cli.nonneg_int, required=True)
    for flag, what in (
        ("--checkpoint", "base classifier"),
        ("--data", "prepared dataset"),
        ("--out", "TSV"),
        ("--summary", "JSON"),
        ("--state", "partial TSV (scratch)"),
    ):
        p.add_argument(flag, type=Path, required=True, help=what)
    cli.add_common(p, record_time=True)


class SmoothingRun:
    """The smoothed classifier of one run, its test subset and its resumable rows."""

    def __init__(self, args: argparse.Namespace, header: tuple[str, ...]) -> None:
        from robust import checkpoint, data
        from robust.rowlog import RowLog
        from robust.smoothing import Smooth

        self.args = args
        self.device = cli.resolve_device(args.device)
        model, self.checkpoint = checkpoint.load_checkpoint(
            args.checkpoint, map_location=self.device
        )
        self.split = data.open_split(args.dataset, args.data, "test")
        self.smooth = Smooth(
            model, self.split.num_classes, args.sigma, chunk_size=args.chunk, seed=args.seed
        )
        fingerprint = {k: v for k, v in vars(args).items() if k not in NOT_IN_FINGERPRINT}
        fingerprint["weights"] = checkpoint.state_dict_digest(model.state_dict())
        self.rows = RowLog(args.state, header, fingerprint)

    def images(self) -> Iterator[tuple[int, Any, int]]:
        """(idx, image [C, H, W] on the device, label) for each image not done yet."""
        for i in cli.progress(self._todo(), self.rows.done):
            x, y = self.split.get([i])
            yield i, x[0].to(self.device), int(y[0])

    def blocks(self, size: int) -> Iterator[tuple[list[int], Any, list[int]]]:
        """(idxs, images [B, C, H, W] on the device, labels) for blocks of at most ``size`` images
        not done yet, in order."""
        idxs: list[int] = []
        for i in cli.progress(self._todo(), self.rows.done):
            idxs.append(i)
            if len(idxs) == size:
                yield self._load(idxs)
                idxs = []
        if idxs:
            yield self._load(idxs)

    def _todo(self) -> list[int]:
        return cli.subset_indices(len(self.split), self.args.skip, self.args.max_images)

    def _load(self, idxs: list[int]) -> tuple[list[int], Any, list[int]]:
        x, y = self.split.get(idxs)
        return idxs, x.to(self.device), [int(label) for label in y]

    def append(self, row: tuple, seconds: float) -> None:
        """Write one row, ending with the image's wall-clock seconds (0 unless record_time)."""
        from robust.metrics import format_time

        self.rows.append((*row, format_time(seconds if self.args.record_time else 0.0)))
