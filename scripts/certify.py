"""Certify the smoothed classifier on a test subset with Cohen et al.'s CERTIFY.

Writes one TSV row per image (idx label predict radius correct time), flushed as it goes, to a scratch file
beside the resumable state; a killed run restarted with the same command skips the images already done.
The declared output is written atomically at the end, with a JSON summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli
from robust.rowlog import RowLog

HEADER = ("idx", "label", "predict", "radius", "correct", "time")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--run_id", required=True)
    p.add_argument("--model", required=True, help="model id")
    p.add_argument("--dataset", required=True)
    p.add_argument("--sigma", type=cli.positive_float, required=True, help="smoothing noise std")
    p.add_argument("--n0", type=cli.positive_int, required=True, help="selection samples")
    p.add_argument("--n", type=cli.positive_int, required=True, help="estimation samples")
    p.add_argument("--alpha", type=cli.probability, required=True, help="failure probability")
    p.add_argument("--batch", type=cli.positive_int, required=True)
    p.add_argument("--chunk", type=cli.positive_int, required=True, help="noise chunk (samples)")
    p.add_argument("--skip", type=cli.positive_int, required=True)
    p.add_argument("--max_images", type=cli.positive_int, required=True)
    p.add_argument("--seed", type=cli.nonneg_int, required=True)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="TSV")
    p.add_argument("--summary", type=Path, required=True, help="JSON")
    p.add_argument("--state", type=Path, required=True, help="partial TSV (scratch)")
    p.add_argument(
        "--record_time",
        action=argparse.BooleanOptionalAction,
        required=True,
        help="write wall-clock times into the outputs (else 0, for byte-identical outputs)",
    )
    cli.add_common(p)
    args = p.parse_args(argv)
    if args.n0 > args.n:
        p.error(f"--n0 ({args.n0}) must not exceed --n ({args.n})")
    return args


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log)
    from robust import checkpoint, data, metrics
    from robust.smoothing import Smooth

    device = cli.resolve_device(args.device)
    model, ckpt = checkpoint.load_checkpoint(args.checkpoint, map_location=device)
    split = data.open_split(args.dataset, args.data, "test")
    smooth = Smooth(model, split.num_classes, args.sigma, chunk_size=args.chunk, seed=args.seed)
    fingerprint = {
        k: v
        for k, v in vars(args).items()
        if k not in {"log", "device", "out", "summary", "record_time"}
    }
    fingerprint["weights"] = checkpoint.state_dict_digest(model.state_dict())
    rows = RowLog(args.state, HEADER, fingerprint)
    for i in cli.progress(cli.subset_indices(len(split), args.skip, args.max_images), rows.done):
        x, y = split.get([i])
        timer = cli.Timer()
        prediction, radius = smooth.certify(
            x[0].to(device), args.n0, args.n, args.alpha, args.batch, idx=i
        )
        label = int(y[0])
        rows.append(
            (
                i,
                label,
                prediction,
                f"{radius:.3}",
                int(prediction == label),
                metrics.format_time(timer.seconds if args.record_time else 0.0),
            )
        )
    table = rows.finish(args.out)
    radius, correct = table["radius"].astype(float), table["correct"].astype(int)
    params = ckpt["params"]
    cli.write_json(
        args.summary,
        {
            "run_id": args.run_id,
            "model_id": args.model,
            "sigma": args.sigma,
            "train_sigma": params.get("sigma", 0.0),
            "n0": args.n0,
            "n": args.n,
            "alpha": args.alpha,
            "n_images": len(radius),
            "clean_accuracy": float(metrics.certified_accuracy(radius, correct, [0.0])[0]),
            "abstain_rate": metrics.abstention_rate(table["predict"].astype(int)),
            "average_certified_radius": metrics.average_certified_radius(radius, correct),
            "seconds_per_image": rows.mean_seconds(),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
