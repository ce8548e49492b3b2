"""Predict with the smoothed classifier on a test subset (Cohen et al.'s PREDICT, abstaining).

Rows (idx label predict correct time) are flushed to a scratch file and resumed after a crash, like
certify.
"""

from __future__ import annotations

import argparse

from robust import cli, smoothing_run

HEADER = ("idx", "label", "predict", "correct", "time")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    smoothing_run.add_arguments(p, with_n0=False)
    return p.parse_args(argv)


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log)
    from robust import metrics

    run = smoothing_run.SmoothingRun(args, HEADER)
    for i, x, label in run.images():
        timer = cli.Timer()
        prediction = run.smooth.predict(x, args.n, args.alpha, args.batch, idx=i)
        run.append((i, label, prediction, int(prediction == label)), timer.seconds)
    table = run.rows.finish(args.out)
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
            "abstain_rate": metrics.abstention_rate(predictions) if len(predictions) else 0.0,
            "seconds_per_image": run.rows.mean_seconds(),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
