"""Certify the smoothed classifier on a test subset with Cohen et al.'s CERTIFY.

Images are certified in blocks that share forward passes; the answers do not depend on the block
size. One TSV row per image (idx label predict radius correct time) is flushed to the scratch file
--state: a killed run restarted with the same command skips the images already done. The TSV, a
JSON summary and the certified-accuracy curve are written atomically at the end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli

HEADER = ("idx", "label", "predict", "radius", "correct", "time")
CURVE_STEP = 0.05  # radius grid of the plotted curve (pixel units)
# Arguments that do not change any row: where things go and how the run is executed.
NOT_IN_FINGERPRINT = {"log", "device", "out", "summary", "curve", "record_time", "block",
                      "compile", "channels_last"}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    for flag in ("n0", "n", "batch", "chunk", "skip", "max_images", "seed", "block"):
        p.add_argument(f"--{flag}", type=int, required=True)
    for flag in ("sigma", "alpha"):
        p.add_argument(f"--{flag}", type=float, required=True)
    for flag in ("run_id", "model", "dataset", "precision", "compile"):
        p.add_argument(f"--{flag}", required=True)
    p.add_argument("--channels_last", action=argparse.BooleanOptionalAction, required=True)
    for flag in ("checkpoint", "data", "out", "summary", "curve", "state"):
        p.add_argument(f"--{flag}", type=Path, required=True)
    cli.add_common(p, record_time=True)
    return p.parse_args(argv)


def smoothed_classifier(args: argparse.Namespace, split, model):
    """The smoothed classifier of the run: the model in NHWC layout and compiled if asked."""
    import torch

    from robust.smoothing import Smooth

    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if args.compile != "none":
        try:
            model = torch.compile(model, mode=None if args.compile == "default" else args.compile)
        except RuntimeError as err:  # torch's own check of the mode
            raise ValueError(f"--compile {args.compile}: {err}") from None
    return Smooth(model, split.num_classes, args.sigma, args.chunk, args.seed, args.precision)


def write_curve(path: Path, radius, correct) -> None:
    """Certified accuracy on a radius grid (step CURVE_STEP, 0 to the largest radius rounded up) as
    a TSV with columns radius, certified_accuracy: the data of ``dvc plots``."""
    import numpy as np

    from robust import io, metrics

    top = np.ceil(max(radius.max(initial=0.0), CURVE_STEP) / CURVE_STEP) * CURVE_STEP
    grid = np.round(np.arange(0.0, top + CURVE_STEP / 2, CURVE_STEP), 10)
    curve = metrics.certified_accuracy(radius, correct, grid)
    lines = ["radius\tcertified_accuracy"]
    lines += [f"{r:.2f}\t{a:.6f}" for r, a in zip(grid, curve, strict=True)]
    io.write_text(path, "\n".join(lines) + "\n")


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    from robust import checkpoint, data, metrics
    from robust.rowlog import RowLog

    device = cli.resolve_device(args.device)
    model, ckpt = checkpoint.load_checkpoint(args.checkpoint, map_location=device)
    fingerprint = {k: v for k, v in vars(args).items() if k not in NOT_IN_FINGERPRINT}
    split = data.open_split(args.data, "test")
    smooth = smoothed_classifier(args, split, model)
    rows = RowLog(args.state, HEADER, fingerprint | {"weights": ckpt["sha256"]})
    subset = cli.subset_indices(len(split), args.skip, args.max_images)
    for idxs in cli.blocks(subset, args.block, rows.done, f"certify {args.run_id}"):
        timer = cli.Timer()
        xs, labels = split.get(idxs)
        answers = smooth.certify(xs.to(device), idxs, args.n0, args.n, args.alpha, args.batch)
        seconds = timer.seconds / len(idxs)  # the block's wall-clock time, split evenly
        elapsed = metrics.format_time(seconds if args.record_time else 0.0)
        for i, label, (prediction, radius) in zip(idxs, labels.tolist(), answers, strict=True):
            rows.append((i, label, prediction, f"{radius:.3}", int(prediction == label), elapsed))
    table = rows.finish(args.out)
    radius, correct = table["radius"].astype(float), table["correct"].astype(int)
    write_curve(args.curve, radius, correct)
    cli.write_json(args.summary, {
        "run_id": args.run_id, "model_id": args.model, "sigma": args.sigma,
        "train_sigma": ckpt["params"].get("sigma", 0.0), "n0": args.n0, "n": args.n,
        "alpha": args.alpha, "precision": args.precision, "n_images": len(radius),
        "clean_accuracy": float(metrics.certified_accuracy(radius, correct, [0.0])[0]),
        "abstain_rate": metrics.abstention_rate(table["predict"].astype(int)),
        "average_certified_radius": metrics.average_certified_radius(radius, correct),
        "seconds_per_image": rows.mean_seconds(),
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
