"""Certified accuracy versus L2 radius, one line per certify run (Cohen et al.'s figure).

On a 0.01 grid up to max(--radii); hollow markers: the published values. Writes <out>.pdf/.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from robust import cli, latex, metrics, report, results

GRID_STEP = 0.01


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path)
    parser.add_argument("--runs", nargs="+", required=True, help="certify run ids")
    parser.add_argument("--radii", nargs="+", type=float, required=True)
    parser.add_argument("--reference", type=Path, required=True, help="published accuracies TSV")
    parser.add_argument("--certify_dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    parser.add_argument(
        "--legend", choices=["sigma", "train_sigma"], default="sigma",
        help="label lines by the certification sigma (default) or the model's training sigma",
    )  # fmt: skip
    return parser.parse_args(argv)


def draw(plt, runs: list[dict], radii: list[float], legend: str):
    max_radius = max(radii)
    grid = np.round(np.arange(0.0, max_radius + GRID_STEP / 2, GRID_STEP), 10)
    fig, ax = plt.subplots(figsize=(4.6, 2.5))
    for i, run in enumerate(runs):
        color = f"C{i}"
        label = rf"$\sigma$ = {latex.format_float(run[legend])}"
        label = "train " + label if legend == "train_sigma" else label + results.train_note(run)
        curve = metrics.certified_accuracy(run["radius"], run["correct"], grid)
        ax.plot(grid, curve, color=color, label=label)
        points = [(r, results.lookup(run["published"], r)) for r in radii]
        points = [(r, v) for r, v in points if v is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, "o", color=color, mfc="none", ms=4, mew=0.9, clip_on=False)
    ax.plot([], [], "o", color="0.35", mfc="none", ms=4, label="Cohen et al. (2019)")
    ax.set(xlim=(0.0, max_radius), ylim=(0.0, 1.0))
    ax.set_xlabel(r"radius ($\ell_2$)")
    ax.set_ylabel("certified accuracy")
    # beside the axes, so that it never covers a curve
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout(pad=0.3)
    return fig


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    if min(args.radii) < 0 or max(args.radii) <= 0:
        raise report.ReportError("radii must be non-negative with a positive maximum")
    reference = results.read_reference(args.reference)
    runs = [results.load_certify_run(args.certify_dir, run, reference) for run in args.runs]
    report.save_figure(draw(report.use_style(), runs, args.radii, args.legend), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
