"""A figure of perceptually aligned images (Figure 1 and its sweeps), from results/pag/<column>.pt.

One generation radius (--eps 16) or all of them (--eps all). Writes <out>.pdf and <out>.png."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from robust import cli, latex, report, results

# Layout in inches: image cell, gaps between cells, room for titles (top, new block) and captions.
CELL, COL_GAP, ROW_GAP, BLOCK_GAP, TOP, BOTTOM, PAD = 1.0, 0.05, 0.2, 0.32, 0.4, 0.2, 0.05


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", nargs="+", required=True, help="PAG column ids")
    parser.add_argument("--rows", nargs="+", type=int, required=True, help="indices of PAG pairs")
    parser.add_argument("--eps", required=True, help="a generation radius, or all (a sweep)")
    parser.add_argument("--pag_dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    parser.add_argument("--log", type=Path)
    return parser.parse_args(argv)


def load_columns(pag_dir: Path, columns: list[str], rows: list[int]):
    """(PAG records, their paths) of the columns, checked: same pairs, every row exists."""
    paths = [pag_dir / f"{column}.pt" for column in columns]
    records = [results.load_pag(path) for path in paths]
    first = records[0]
    for column, record in zip(columns[1:], records[1:], strict=True):
        if not all(torch.equal(record[k], first[k]) for k in ("labels", "targets")):
            raise report.ReportError(f"columns {columns[0]} and {column} use different pairs")
    n_pairs = len(first["labels"])
    for row in rows:
        if not 0 <= row < n_pairs:
            raise report.ReportError(f"row {row} out of range: the results have {n_pairs} pairs")
    return records, paths


def pair_label(record: dict, row: int) -> str:
    """'start class -> target class' of pair ``row`` (a mathtext arrow; '$' in names escaped)."""
    names = [str(n).replace("$", r"\$") for n in record["class_names"]]
    start, target = names[int(record["labels"][row])], names[int(record["targets"][row])]
    return f"{start} $\\rightarrow$ {target}"


def cell(record: dict, e: int, row: int) -> tuple[torch.Tensor, str | None]:
    """(image [C,H,W], caption) of pair ``row`` at eps index e; the original is (x0[row], None)."""
    prob = record.get("target_prob")
    caption = None if prob is None else f"$p_t$ = {float(prob[e][row]):.2f}"
    return record["images"][e][row], caption


def label_width(plt, labels: list[str]) -> float:
    """Width in inches of the widest row label, as rendered (mathtext included)."""
    fig = plt.figure()
    renderer = fig.canvas.get_renderer()
    widths = [fig.text(0, 0, t, fontsize=7).get_window_extent(renderer).width for t in labels]
    plt.close(fig)
    return max(widths, default=0.0) / fig.dpi


def draw(plt, grid: list[list], labels: list[str], titles: list[list]):
    """Square cells of one size placed in inches, the left margin fitting the labels. grid[r][c]:
    (image [C,H,W], caption) or None; titles[r][c]: a title or None (titled rows get more space)."""
    nrows, ncols = len(grid), len(grid[0])
    left = label_width(plt, labels) + 0.15  # the label's pad from its axes
    gaps = [0.0] + [ROW_GAP + (BLOCK_GAP if any(titles[r]) else 0.0) for r in range(1, nrows)]
    width = left + ncols * CELL + (ncols - 1) * COL_GAP + PAD
    height = TOP + nrows * CELL + sum(gaps) + BOTTOM
    fig = plt.figure(figsize=(width, height))
    y = height - TOP
    for r in range(nrows):
        y -= gaps[r] + CELL
        for c in range(ncols):
            x = left + c * (CELL + COL_GAP)
            ax = fig.add_axes((x / width, y / height, CELL / width, CELL / height))
            ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
            if titles[r][c]:
                ax.set_title(titles[r][c], fontsize=7, pad=3)
            if c == 0:
                ax.set_ylabel(labels[r], fontsize=7, rotation=0, ha="right", va="center")
            if grid[r][c] is None:
                ax.set_frame_on(False)
                continue
            image, caption = grid[r][c]
            pixels = image.detach().float().clamp(0, 1).permute(1, 2, 0).squeeze(2).numpy()
            ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=1)
            if caption:
                ax.set_xlabel(caption, fontsize=6, labelpad=2)
    return fig


def layout_fixed_eps(records: list[dict], rows: list[int], eps: float, paths: list[Path]):
    """One row per (start image, target) pair; columns: Original + one per record, all at eps."""
    index = [results.eps_index(r, eps, path) for r, path in zip(records, paths, strict=True)]
    grid = [
        [(records[0]["x0"][p], None)] + [cell(r, e, p) for r, e in zip(records, index, strict=True)]
        for p in rows
    ]
    head = ["Original"] + [results.pag_title(r) for r in records]
    titles = [head] + [[None] * len(head) for _ in rows[1:]]
    return grid, [pair_label(records[0], p) for p in rows], titles


def layout_eps_sweep(records: list[dict], rows: list[int], paths: list[Path]):
    """One block per pair: rows = records, columns = Original + one per generation radius."""
    eps = [float(e) for e in records[0]["eps"]]
    for record, path in zip(records, paths, strict=True):
        if [float(e) for e in record["eps"]] != eps:
            raise report.ReportError(f"{path} has other eps values than {paths[0]}")
    grid, labels, titles = [], [], []
    for p in rows:
        for k, record in enumerate(records):
            original = (record["x0"][p], None) if k == 0 else None
            grid.append([original] + [cell(record, e, p) for e in range(len(eps))])
            labels.append(results.pag_title(record))
            head = [pair_label(record, p)] + [rf"$\epsilon$ = {latex.format_float(e)}" for e in eps]
            titles.append(head if k == 0 else [None] * len(head))
    return grid, labels, titles


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    records, paths = load_columns(args.pag_dir, args.columns, args.rows)
    if args.eps == "all":
        grid, labels, titles = layout_eps_sweep(records, args.rows, paths)
    else:
        try:
            eps = float(args.eps)
        except ValueError:
            raise report.ReportError(f"--eps: a generation radius or all, got {args.eps}") from None
        grid, labels, titles = layout_fixed_eps(records, args.rows, eps, paths)
    report.save_figure(draw(report.use_style(), grid, labels, titles), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
