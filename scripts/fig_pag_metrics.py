"""Perceptual-alignment metrics as sweeps, from the JSON of scripts/pag_metrics.py.

One row per shown metric. Left: against the generation radius eps, a line and 95% bootstrap band
per PAG column. Middle: smoothed columns against sigma; right: adversarially trained ones against
their training eps; both at the largest generation eps, the standard model at 0, absent without
such columns. Grey: the controls (dashed: a random direction of the same norm, "no better than
noise"; dotted: a straight step toward the target's reference, "aligned"). Writes <out>.pdf/.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli, latex, report, results

ROW_HEIGHT, WIDTH, LEFT, TOP, BOTTOM = 0.95, 6.5, 0.95, 0.75, 0.45  # inches
GREY = {"color": "0.35", "lw": 0.9}
CONTROL_STYLE = {"random": GREY | {"ls": "--"}, "reference": GREY | {"ls": ":"}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--metrics", type=Path, required=True, help="JSON of pag_metrics.py")
    p.add_argument("--out", type=Path, required=True, help="output path without suffix")
    p.add_argument("--log", type=Path, required=True)
    return p.parse_args(argv)


def stats(info: dict, key: str, name: str) -> tuple[float, float, float]:
    return tuple(info["eps"][key][name][k] for k in ("mean", "low", "high"))


def sweeps(columns: dict) -> list[tuple[str, str, list[str]]]:
    """(x label, x key, columns sorted by x) per sweep panel; the standard column sits at x = 0."""
    standard = [c for c, info in columns.items() if info["role"] == "standard"][:1]
    out = []
    for role, label, key in (("smoothed", r"smoothing $\sigma$", "sigma"),
                             ("adversarial", r"training $\epsilon$", "train_eps")):  # fmt: skip
        chosen = sorted((c for c, i in columns.items() if i["role"] == role),
                        key=lambda c: columns[c][key])  # fmt: skip
        if chosen:
            out.append((label, key, standard + chosen))
    return out


def draw_eps(ax, summary: dict, columns: dict, name: str, colours: dict) -> None:
    """The metric against generation eps with bands, one line per column, and the controls."""
    for column, info in columns.items():
        keys = sorted(info["eps"], key=float)
        eps = [float(k) for k in keys]
        mean, low, high = zip(*(stats(info, k, name) for k in keys), strict=True)
        ax.plot(eps, mean, marker="o", ms=2.5, color=colours[column], label=info["title"])
        ax.fill_between(eps, low, high, color=colours[column], alpha=0.18, lw=0)
    for control, info in summary["controls"].items():
        keys = sorted(info["eps"], key=float)
        means = [info["eps"][k][name]["mean"] for k in keys]
        ax.plot([float(k) for k in keys], means, label=info["title"], **CONTROL_STYLE[control])
    eps = summary["settings"]["eps"]
    if min(eps) > 0 and len(eps) > 1:
        ax.set_xscale("log", base=2)
    ax.set_xticks(eps, [f"{e:g}" for e in eps])
    ax.minorticks_off()


def draw_sweep(ax, summary: dict, name: str, key: str, columns: list[str], colours: dict) -> None:
    """The metric and the controls at the largest generation eps against sigma or training eps."""
    at = summary["settings"]["eps_key"]
    infos = [summary["columns"][c] for c in columns]
    xs = [i[key] if i["role"] != "standard" else 0.0 for i in infos]
    mean, low, high = zip(*(stats(i, at, name) for i in infos), strict=True)
    ax.plot(xs, mean, color="0.4", lw=0.8)
    for x, m, lo, hi, c in zip(xs, mean, low, high, columns, strict=True):
        ax.errorbar([x], [m], yerr=[[m - lo], [hi - m]], fmt="o", ms=3, capsize=2,
                    color=colours[c])  # fmt: skip
    ax.set_xticks(xs, [f"{x:g}" for x in xs], rotation=45 if len(xs) > 3 else 0)
    for control, info in summary["controls"].items():
        ax.axhline(info["eps"][at][name]["mean"], **CONTROL_STYLE[control])


def build(summary: dict, out: Path) -> None:
    plt = report.use_style()
    # JSON keys are sorted; settings.columns keeps the order of the table (baseline first).
    order = summary["settings"].get("columns", list(summary["columns"]))
    columns = {c: summary["columns"][c] for c in order}
    metrics = {m: summary["metrics"][m] for m in summary["settings"]["shown"]}
    colours = {c: f"C{i % 10}" for i, c in enumerate(columns)}
    panels = sweeps(columns)
    nrows, ncols = len(metrics), 1 + len(panels)
    height = ROW_HEIGHT * nrows + TOP + BOTTOM
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, height), squeeze=False)
    # Fixed margins in inches instead of a layout engine: several times faster, same bytes each run.
    fig.subplots_adjust(left=LEFT / WIDTH, right=1 - 0.1 / WIDTH, top=1 - TOP / height,
                        bottom=BOTTOM / height, wspace=0.3, hspace=0.35)  # fmt: skip
    for row, (name, spec) in enumerate(metrics.items()):
        draw_eps(axes[row][0], summary, columns, name, colours)
        for col, (_, key, chosen) in enumerate(panels, start=1):
            draw_sweep(axes[row][col], summary, name, key, chosen, colours)
        if name.startswith("judge_"):
            for ax in axes[row]:
                ax.set_ylim(-0.03, 1.03)
        arrow = r"$\uparrow$" if spec["better"] == "max" else r"$\downarrow$"
        group = spec["group"].removeprefix("Judges: ")
        axes[row][0].set_ylabel(f"{group}\n{spec['label']} {arrow}", fontsize="small")
    at = latex.format_float(summary["paired"]["eps"])
    axes[-1][0].set_xlabel(r"generation $\epsilon$")
    axes[0][0].set_title("against generation radius")
    for col, (label, _, _) in enumerate(panels, start=1):
        axes[-1][col].set_xlabel(label)
        axes[0][col].set_title(rf"at generation $\epsilon$ = {at}")
    handles, labels = axes[0][0].get_legend_handles_labels()  # the columns, then the controls
    fig.legend(handles, labels, loc="upper center", ncols=min(4, len(labels)), frameon=False)
    report.save_figure(fig, out)


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    keys = ("settings", "metrics", "columns", "controls", "paired")
    build(results.load_json(args.metrics, keys), args.out)
    cli.LOG.info("wrote %s.pdf and %s.png", args.out, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
