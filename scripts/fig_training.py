"""Training curves: per model, training loss above test accuracy (clean and under the model's
evaluation noise) per epoch, as small multiples under one legend. Writes <out>.pdf and <out>.png."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from robust import cli, report, results

PER_ROW = 3  # models per row of small multiples
LEGEND_IN = 0.25  # inches above the panels for the legend
NOISY = "under the model's training noise"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path)
    parser.add_argument("--models", nargs="+", required=True, help="model ids")
    parser.add_argument("--train_dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    return parser.parse_args(argv)


def load_model(train_dir: Path, model: str) -> dict:
    """The training record, epochs checked (a pretrained model's has none, only its provenance)."""
    path = train_dir / f"{model}.json"
    record = results.load_json(path, ["epochs"])
    if "pretrained" not in record:
        if not record["epochs"]:
            raise report.ReportError(f"{path}: no epochs recorded")
        for key in ("epoch", "loss", "test_accuracy", "test_noise_accuracy"):
            results.require(record["epochs"][0], key, path)
    return record


def draw_model(ax_loss, ax_acc, model: str, record: dict) -> None:
    """Loss above test accuracy per epoch, titled by model and training (pretrained: a note)."""
    params = record.get("params", {})
    kind = str(record.get("kind", params.get("kind", "")))
    label = results.training_label(kind, params.get("sigma", 0.0), params.get("eps", 0.0))
    ax_loss.set_title(f"{model} ({label})" if kind else model, fontsize=7)
    if "pretrained" in record:
        text = f"pretrained ({record['pretrained'].get('format', '')})\nno training curve"
        ax_loss.text(0.5, 0.5, text, ha="center", va="center")
        ax_loss.set_axis_off()
        ax_acc.set_axis_off()
        return
    epochs = record["epochs"]
    x = [e["epoch"] for e in epochs]
    ax_loss.plot(x, [e["loss"] for e in epochs], color="C0")
    ax_loss.set_ylabel("training loss")
    ax_acc.plot(x, [e["test_accuracy"] for e in epochs], color="C1", label="clean")
    if float(params.get("eval_sigma", 0.0)) > 0:
        noisy = [e["test_noise_accuracy"] for e in epochs]
        ax_acc.plot(x, noisy, color="C2", ls="--", label=NOISY)
    ax_acc.set(ylim=(0.0, 1.0), xlabel="epoch", ylabel="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def draw(plt, models: list[str], records: list[dict]):
    """The figure: two panels (loss above accuracy) per model, PER_ROW models per row."""
    ncols = min(PER_ROW, len(records))
    nrows = math.ceil(len(records) / ncols)
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(2.4 * ncols, 3.2 * nrows), squeeze=False)
    for k, (model, record) in enumerate(zip(models, records, strict=True)):
        row, col = 2 * (k // ncols), k % ncols
        draw_model(axes[row][col], axes[row + 1][col], model, record)
    for ax in axes[-2:, len(records) - (nrows - 1) * ncols :].flat:  # unused cells of the last row
        ax.set_visible(False)
    # one legend for every panel, above them, so that it never covers a curve
    handles = [plt.Line2D([], [], color="C1"), plt.Line2D([], [], color="C2", ls="--")]
    fig.legend(handles, ["clean", NOISY], loc="upper center", ncols=2, frameon=False)
    fig.tight_layout(pad=0.3, h_pad=0.4, rect=(0, 0, 1, 1 - LEGEND_IN / fig.get_figheight()))
    return fig


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    records = [load_model(args.train_dir, model) for model in args.models]
    report.save_figure(draw(report.use_style(), args.models, records), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
