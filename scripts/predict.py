"""Predict with the smoothed classifier on a test subset (Cohen et al.'s PREDICT, abstaining).

Rows (idx label predict correct time) are flushed to a scratch file and resumed after a crash, like certify.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli
from robust.rowlog import RowLog

HEADER = ("idx", "label", "predict", "correct", "time")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--run_id", required=True)
    p.add_argument("--model", required=True, help="model id")
    p.add_argument("--dataset", required=True)
    p.add_argument("--sigma", type=cli.positive_float, required=True)
    p.add_argument("--n", type=cli.positive_int, required=True)
    p.add_argument("--alpha", type=cli.probability, required=True)
    p.add_argument("--batch", type=cli.positive_int, required=True)
    p.add_argument("--chunk", type=cli.positive_int, required=True)
    p.add_argument("--skip", type=cli.positive_int, required=True)
    p.add_argument("--max_images", type=cli.positive_int, required=True)
    p.add_argument("--seed", type=cli.nonneg_int, required=True)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--state", type=Path, required=True)
    p.add_argument(
        "--record_time",
        action=argparse.BooleanOptionalAction,
        required=True,
        help="write wall-clock times into the outputs (else 0, for byte-identical outputs)",
    )
    cli.add_common(p)
    return p.parse_args(argv)


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log)
    from robust import checkpoint, data, metrics
    from robust.smoothing import Smooth

    device = cli.resolve_device(args.device)
    model, _ = checkpoint.load_checkpoint(args.checkpoint, map_location=device)
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
        prediction = smooth.predict(x[0].to(device), args.n, args.alpha, args.batch, idx=i)
        label = int(y[0])
        rows.append(
            (
                i,
                label,
                prediction,
                int(prediction == label),
                metrics.format_time(timer.seconds if args.record_time else 0.0),
            )
        )
    table = rows.finish(args.out)
    predictions = table["predict"].astype(int)
    cli.write_json(
        args.summary,
        {
            "run_id": args.run_id,
            "model_id": args.model,
            "sigma": args.sigma,
            "n": args.n,
            "alpha": args.alpha,
            "n_images": len(predictions),
            "accuracy": float(table["correct"].astype(int).mean()) if len(predictions) else 0.0,
            "abstain_rate": metrics.abstention_rate(predictions),
            "seconds_per_image": rows.mean_seconds(),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
