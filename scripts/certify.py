"""Certify the smoothed classifier on a test subset with Cohen et al.'s CERTIFY.

Writes one TSV row per image (idx label predict radius correct time), flushed as it goes, to a
scratch file beside the resumable state; a killed run restarted with the same command skips the
images already done. The declared output is written atomically at the end, with a JSON summary.
"""

from __future__ import annotations

import argparse

from robust import cli, smoothing_run

HEADER = ("idx", "label", "predict", "radius", "correct", "time")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    smoothing_run.add_arguments(p, with_n0=True)
    args = p.parse_args(argv)
    if args.n0 > args.n:
        p.error(f"--n0 ({args.n0}) must not exceed --n ({args.n})")
    return args


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log)
    from robust import metrics

    run = smoothing_run.SmoothingRun(args, HEADER)
    for i, x, label in run.images():
        timer = cli.Timer()
        prediction, radius = run.smooth.certify(x, args.n0, args.n, args.alpha, args.batch, idx=i)
        run.append((i, label, prediction, f"{radius:.3}", int(prediction == label)), timer)
    table = run.rows.finish(args.out)
    radius, correct = table["radius"].astype(float), table["correct"].astype(int)
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
