"""LaTeX tables of the paper: certified accuracy versus the published values, clean/robust accuracy.

certified_accuracy.tex: blocks Ours, Cohen et al. (2019) (matched by sigma) and their difference
(of the values shown), the column maxima of the first two bold; certified_accuracy.md: ours and
published per run, for the README; accuracy.tex: clean and L2-PGD accuracy (%) per model, column
maxima bold. --summary_dir gets the lines of `dvc metrics show` (three decimals): models/<id>.json
and certify/<run>.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli, latex, metrics, results
from robust.io import write_text

FMT, NUM = latex.format_fraction, latex.format_float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path)
    parser.add_argument("--runs", nargs="+", required=True, help="certify run ids (table rows)")
    parser.add_argument("--radii", nargs="+", type=float, required=True, help="table columns")
    parser.add_argument("--reference", type=Path, required=True, help="published accuracies TSV")
    parser.add_argument("--models", nargs="+", required=True, help="model ids (accuracy table)")
    for flag in ("--certify_dir", "--eval_dir", "--train_dir", "--out_dir"):
        parser.add_argument(flag, type=Path, required=True)
    parser.add_argument("--summary_dir", type=Path, required=True, help="dvc metrics summaries")
    return parser.parse_args(argv)


def certified_cells(run: dict, radii: list[float]) -> tuple[list[str], list[str], list[str]]:
    """Cells of a run as displayed: ours, published ('--' if none) and their signed difference."""
    ours = [FMT(a) for a in metrics.certified_accuracy(run["radius"], run["correct"], radii)]
    published = [FMT(results.lookup(run["published"], r)) for r in radii]
    pairs = zip(ours, published, strict=True)
    diff = ["--" if p == "--" else latex.format_signed(float(o) - float(p)) for o, p in pairs]
    return ours, published, diff


def certified_markdown(runs: list[dict], radii: list[float]) -> str:
    """The certified-accuracy table in Markdown: per run a line of ours, then the published one."""
    header = ["", *(f"r = {NUM(r)}" for r in radii)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        mine, theirs, _ = certified_cells(run, radii)
        label = f"σ = {NUM(run['sigma'])}{results.train_note(run)}"
        lines.append(f"| {label}, ours | " + " | ".join(mine) + " |")
        lines.append("| Cohen et al. (2019) | " + " | ".join(theirs) + " |")
    return "\n".join(lines) + "\n"


def certified_table(runs: list[dict], radii: list[float]) -> str:
    labels = [rf"$\sigma = {NUM(run['sigma'])}$" + results.train_note(run) for run in runs]
    ours, published, diff = zip(*(certified_cells(run, radii) for run in runs), strict=True)
    blocks = [("Ours", ours, True), ("Cohen et al. (2019)", published, True),
              (r"Ours $-$ Cohen et al.", diff, False)]  # fmt: skip
    header = [latex.table_row([""] + [rf"$r = {NUM(r)}$" for r in radii])]
    body: list[str] = []
    for title, rows, bold in blocks:
        body += [r"\midrule"] if body else []
        body.append(rf"\multicolumn{{{len(radii) + 1}}}{{l}}{{\emph{{{title}}}}} \\")
        columns = [latex.bold_max(c) if bold else list(c) for c in zip(*rows, strict=True)]
        cells = zip(*columns, strict=True)
        body += [latex.table_row([lab, *c]) for lab, c in zip(labels, cells, strict=True)]
    return latex.tabular("l" + "c" * len(radii), header, body)


def accuracy_table(models: list[str], records: list[dict]) -> str:
    robust = [{float(k): v for k, v in m["robust_accuracy"].items()} for m in records]
    eps = sorted({e for r in robust for e in r})
    columns = [[latex.format_percent(meta["clean_accuracy"]) for meta in records]]
    columns += [[latex.format_percent(results.lookup(r, e)) for r in robust] for e in eps]
    rows = zip(*[latex.bold_max(col) for col in columns], strict=True)
    header = []
    if eps:
        span = rf"\multicolumn{{{len(eps)}}}{{c}}{{PGD ($\ell_2$) accuracy (\%)}}"
        header = [latex.table_row(["", "", "", span]), rf"\cmidrule(lr){{4-{3 + len(eps)}}}"]
    eps_cells = [rf"$\epsilon = {NUM(e)}$" for e in eps]
    header.append(latex.table_row(["Model", "Training", r"Clean (\%)", *eps_cells]))
    body = []
    for model, meta, cells in zip(models, records, rows, strict=True):
        trained = results.training_label(
            str(meta.get("kind", "")), meta.get("train_sigma", 0.0), meta.get("train_eps", 0.0)
        )
        body.append(latex.table_row([rf"\texttt{{{latex.tex_escape(model)}}}", trained, *cells]))
    return latex.tabular("ll" + "c" * (1 + len(eps)), header, body)


def _short(value):
    """A fraction or time to three decimals (what `dvc metrics show` can display in a line)."""
    return None if value is None else round(float(value), 3)


def summaries(args: argparse.Namespace, runs: list[dict], evals: list[dict]) -> dict[Path, dict]:
    """Path -> content of every summary file; a value is None where it was not recorded."""
    out = {}
    for model, evaluation in zip(args.models, evals, strict=True):
        train = results.load_json(args.train_dir / f"{model}.json")
        out[args.summary_dir / "models" / f"{model}.json"] = {
            "clean": _short(evaluation["clean_accuracy"]),
            "noisy": _short((train.get("final") or {}).get("test_noise_accuracy")),
            "train_s": _short(train.get("seconds")),
        } | {f"pgd_{float(e):g}": _short(v) for e, v in evaluation["robust_accuracy"].items()}
    for name, run in zip(args.runs, runs, strict=True):
        accuracy = metrics.certified_accuracy(run["radius"], run["correct"], args.radii)
        out[args.summary_dir / "certify" / f"{name}.json"] = {
            "abstain": _short(run.get("abstain_rate")),
            "acr": _short(run.get("average_certified_radius")),
        } | {f"r_{r:g}": _short(a) for r, a in zip(args.radii, accuracy, strict=True)}
    return out


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    # Everything is computed before anything is written, so bad input leaves no partial output.
    reference = results.read_reference(args.reference)
    runs = [results.load_certify_run(args.certify_dir, run, reference) for run in args.runs]
    keys = ("clean_accuracy", "robust_accuracy")
    evals = [results.load_json(args.eval_dir / f"{model}.json", keys) for model in args.models]
    tables = {
        "certified_accuracy.tex": certified_table(runs, args.radii),
        "certified_accuracy.md": certified_markdown(runs, args.radii),
        "accuracy.tex": accuracy_table(args.models, evals),
    }
    summary = summaries(args, runs, evals)
    for name, text in tables.items():
        write_text(args.out_dir / name, text)
    for path, content in summary.items():
        cli.write_json(path, content)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
