"""Certify the smoothed classifier on a test subset with Cohen et al.'s CERTIFY.

Images are certified in blocks (``fastcert.certify_many``: the noise of several images shares
forward passes, counts stay on the device, one host synchronisation per block); in float32 the
answers equal ``Smooth.certify`` image by image. Writes one TSV row per image (idx label predict
radius correct time), flushed block by block, to a scratch file beside the resumable state; a
killed run restarted with the same command skips the images already done. The declared output is
written atomically at the end, with a JSON summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli, smoothing_run

HEADER = ("idx", "label", "predict", "radius", "correct", "time")
# Mirrors robust.precision.PRECISIONS (not imported here: parsing must not wait for torch; a test
# keeps the two and the params schema equal).
PRECISIONS = ("fp32", "bf16", "fp16")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
CURVE_STEP = 0.05  # radius grid of the plotted curve (pixel units)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    smoothing_run.add_arguments(p, with_n0=True)
    p.add_argument("--precision", choices=PRECISIONS, required=True, help="forward-pass autocast")
    p.add_argument(
        "--tie_margin", type=cli.nonneg_float, required=True,
        help="bf16/fp16: samples with a top-2 logit margin below this get the fp32 label",
    )  # fmt: skip
    p.add_argument("--block", type=cli.positive_int, required=True, help="images per block")
    p.add_argument("--channels_last", action=argparse.BooleanOptionalAction, required=True)
    p.add_argument("--compile", choices=COMPILE_MODES, required=True, help="torch.compile mode")
    p.add_argument("--curve", type=Path, required=True, help="certified accuracy curve (TSV)")
    args = p.parse_args(argv)
    if args.n0 > args.n:
        p.error(f"--n0 ({args.n0}) must not exceed --n ({args.n})")
    return args


def certify_block(run, args, idxs: list[int], xs, ties) -> list[tuple[int, float]]:
    """(prediction or ABSTAIN, radius) for the images xs [B, C, H, W] with dataset indices idxs;
    what the tie margin did is added to ``ties`` (a ``fastcert.TieStats``)."""
    from robust import fastcert

    return fastcert.certify_many(
        run.smooth.base_classifier, xs, idxs, run.split.num_classes, args.sigma, args.n0, args.n,
        args.alpha, args.batch, args.chunk, args.seed, precision=args.precision,
        channels_last=args.channels_last,
        compile_mode=None if args.compile == "none" else args.compile, tie_margin=args.tie_margin,
        stats=ties,
    )  # fmt: skip


def log_ties(args: argparse.Namespace, ties) -> None:
    """One log line on the tie margin's work (bf16/fp16 with a margin only). Only the log has it:
    a resumed run sees just its own rows, and the declared outputs must not depend on that."""
    if ties.samples:
        cli.LOG.info(
            "tie_margin %s: %d of %d noisy samples (%.3f%%) labelled by float32, %d labels changed"
            " (the images certified by this invocation)", args.tie_margin, ties.near_ties,
            ties.samples, 100 * ties.near_ties / ties.samples, ties.changed,
        )  # fmt: skip


def write_curve(path: Path, radius, correct) -> None:
    """Certified accuracy on a radius grid (step CURVE_STEP, 0 to the largest radius rounded up) as
    a TSV with columns radius, certified_accuracy: the data of ``dvc plots``."""
    import numpy as np

    from robust import io, metrics

    top = np.ceil(max(radius.max(initial=0.0), CURVE_STEP) / CURVE_STEP) * CURVE_STEP
    grid = np.round(np.arange(0.0, top + CURVE_STEP / 2, CURVE_STEP), 10)
    curve = metrics.certified_accuracy(radius, correct, grid)
    lines = ["radius\tcertified_accuracy"] + [
        f"{r:.2f}\t{a:.6f}" for r, a in zip(grid, curve, strict=True)
    ]
    io.write_text(path, "\n".join(lines) + "\n")


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log)
    from robust import fastcert, metrics

    run, ties = smoothing_run.SmoothingRun(args, HEADER), fastcert.TieStats()
    for idxs, xs, labels in run.blocks(args.block):
        timer = cli.Timer()
        answers = certify_block(run, args, idxs, xs, ties)
        seconds = timer.seconds / len(idxs)  # the block's wall-clock time, split evenly
        for i, label, (prediction, radius) in zip(idxs, labels, answers, strict=True):
            run.append((i, label, prediction, f"{radius:.3}", int(prediction == label)), seconds)
    log_ties(args, ties)
    table = run.rows.finish(args.out)
    radius, correct = table["radius"].astype(float), table["correct"].astype(int)
    write_curve(args.curve, radius, correct)
    cli.write_json(
        args.summary,
        {
            "run_id": args.run_id,
            "model_id": args.model,
            "sigma": args.sigma,
            "train_sigma": run.checkpoint["params"].get("sigma", 0.0),
            "n0": args.n0,
            "n": args.n,
            "alpha": args.alpha,
            "precision": args.precision,
            "tie_margin": args.tie_margin,
            "n_images": len(radius),
            "clean_accuracy": float(metrics.certified_accuracy(radius, correct, [0.0])[0]),
            "abstain_rate": metrics.abstention_rate(table["predict"].astype(int)),
            "average_certified_radius": metrics.average_certified_radius(radius, correct),
            "seconds_per_image": run.rows.mean_seconds(),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
