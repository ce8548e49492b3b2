"""Predict with the smoothed classifier on a test subset (Cohen et al.'s PREDICT, abstaining).

Rows are flushed to a scratch file and resumed after a crash, like certify.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli

HEADER = ("idx", "label", "predict", "correct", "time")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    for flag in ("n", "batch", "chunk", "skip", "max_images", "seed"):
        p.add_argument(f"--{flag}", type=int, required=True)
    p.add_argument("--sigma", type=float, required=True)
    p.add_argument("--alpha", type=float, required=True)
    for flag in ("run_id", "model", "dataset"):
        p.add_argument(f"--{flag}", required=True)
    for flag in ("checkpoint", "data", "out", "summary", "state"):
        p.add_argument(f"--{flag}", type=Path, required=True)
    cli.add_common(p, record_time=True)
    return p.parse_args(argv)


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    from robust import checkpoint, data, metrics
    from robust.rowlog import RowLog
    from robust.smoothing import Smooth

    device = cli.resolve_device(args.device)
    model, ckpt = checkpoint.load_checkpoint(args.checkpoint, map_location=device)
    where = {"log", "device", "out", "summary", "record_time"}  # not in the rows' fingerprint
    fingerprint = {k: v for k, v in vars(args).items() if k not in where}
    split = data.open_split(args.data, "test")
    smooth = Smooth(model, split.num_classes, args.sigma, args.chunk, args.seed)
    rows = RowLog(args.state, HEADER, fingerprint | {"weights": ckpt["sha256"]})
    subset = cli.subset_indices(len(split), args.skip, args.max_images)
    for idxs in cli.blocks(subset, 1, rows.done, f"predict {args.run_id}"):
        timer = cli.Timer()
        x, label = split.get(idxs)
        prediction = smooth.predict(x.to(device), idxs, args.n, args.alpha, args.batch)[0]
        elapsed = metrics.format_time(timer.seconds if args.record_time else 0.0)
        rows.append((idxs[0], int(label), prediction, int(prediction == label), elapsed))
    table = rows.finish(args.out)
    predictions = table["predict"].astype(int)
    cli.write_json(args.summary, {
        "run_id": args.run_id, "model_id": args.model, "sigma": args.sigma, "n": args.n,
        "alpha": args.alpha, "n_images": len(predictions),
        "accuracy": float(table["correct"].astype(int).mean()) if len(predictions) else 0.0,
        "abstain_rate": metrics.abstention_rate(predictions) if len(predictions) else 0.0,
        "seconds_per_image": rows.mean_seconds(),
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
