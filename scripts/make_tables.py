"""LaTeX tables of the paper: certified accuracy versus the published values, clean/robust accuracy.

certified_accuracy.tex: three blocks over the same radius columns: ours (certified accuracy of each
run), Cohen et al. (2019) (published, matched by sigma) and the difference ours - published
(computed from the two-decimal values shown). The column maximum of each of the first two blocks
is bold. accuracy.tex: clean and L2-PGD robust accuracy (%) per model, column maxima bold.
Both are complete booktabs tabulars without a float wrapper; certified_accuracy.md is the first
table in Markdown (ours and published, per run), for the README.

The short summaries that `dvc metrics show` lists go to --summary_dir: models/<id>.json per model
of the accuracy table (clean and PGD accuracy of its evaluation; final test accuracy under its
training noise and training seconds of its record) and certify/<run>.json per run of the
certified-accuracy table (abstention rate, average certified radius, certified accuracy at each
radius of the table), to three decimals.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from robust import cli, latex, metrics, results
from robust.io import write_text

FMT = latex.format_fraction


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path)
    parser.add_argument("--runs", nargs="+", required=True, help="certify run ids (table rows)")
    parser.add_argument("--radii", nargs="+", type=float, required=True, help="table columns")
    parser.add_argument("--reference", type=Path, required=True, help="published accuracies TSV")
    parser.add_argument("--models", nargs="+", required=True, help="model ids (accuracy table)")
    parser.add_argument("--certify_dir", type=Path, required=True)
    parser.add_argument("--eval_dir", type=Path, required=True)
    parser.add_argument("--train_dir", type=Path, required=True)
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--summary_dir", type=Path, required=True, help="dvc metrics summaries")
    return parser.parse_args(argv)


def run_label(run: dict) -> str:
    """'$\\sigma = 0.25$', plus the training sigma when it differs from the certification sigma."""
    sigma, train = run["sigma"], run["train_sigma"]
    label = rf"$\sigma = {latex.format_float(sigma)}$"
    return label if math.isclose(sigma, train) else label + f" (train {latex.format_float(train)})"


def certified_rows(certify_dir: Path, runs: list[str], radii: list[float], reference: dict):
    """Row labels and displayed cells (ours, published) per run; '--' where nothing is published."""
    labels, ours, published = [], [], []
    for run in (results.load_certify_run(certify_dir, r, reference) for r in runs):
        labels.append(run_label(run))
        ours.append(
            [FMT(a) for a in metrics.certified_accuracy(run["radius"], run["correct"], radii)]
        )
        published.append([FMT(results.lookup(run["published"], r)) for r in radii])
    return labels, ours, published


def difference(ours: list[str], published: list[str]) -> list[str]:
    """Signed differences of the displayed two-decimal values ('--' without a published value)."""
    pairs = zip(ours, published, strict=True)
    return ["--" if p == "--" else latex.format_signed(float(o) - float(p)) for o, p in pairs]


def certified_markdown(
    certify_dir: Path, runs: list[str], radii: list[float], ref_path: Path
) -> str:
    """The certified-accuracy table as Markdown (the README's copy): per run a line of ours and,
    below it, Cohen et al.'s published values ('--' where none)."""
    reference = results.read_reference(ref_path)
    _, ours, published = certified_rows(certify_dir, runs, radii, reference)
    header = ["", *(f"r = {latex.format_float(r)}" for r in radii)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run, mine, theirs in zip(runs, ours, published, strict=True):
        record = results.load_certify_run(certify_dir, run, {})
        label = f"σ = {latex.format_float(record['sigma'])}"
        if not math.isclose(record["sigma"], record["train_sigma"]):
            label += f" (train {latex.format_float(record['train_sigma'])})"
        lines.append(f"| {label}, ours | " + " | ".join(mine) + " |")
        lines.append("| Cohen et al. (2019) | " + " | ".join(theirs) + " |")
    return "\n".join(lines) + "\n"


def certified_table(certify_dir: Path, runs: list[str], radii: list[float], ref_path: Path) -> str:
    reference = results.read_reference(ref_path)
    labels, ours, published = certified_rows(certify_dir, runs, radii, reference)
    diff = [difference(o, p) for o, p in zip(ours, published, strict=True)]
    blocks = [("Ours", ours, True), ("Cohen et al. (2019)", published, True)]
    blocks.append((r"Ours $-$ Cohen et al.", diff, False))
    header = [latex.table_row([""] + [rf"$r = {latex.format_float(r)}$" for r in radii])]
    body: list[str] = []
    for title, rows, bold in blocks:
        body += [r"\midrule"] if body else []
        body.append(rf"\multicolumn{{{len(radii) + 1}}}{{l}}{{\emph{{{title}}}}} \\")
        columns = [latex.bold_max(c) if bold else list(c) for c in zip(*rows, strict=True)]
        cells = zip(*columns, strict=True)
        body += [latex.table_row([lab, *c]) for lab, c in zip(labels, cells, strict=True)]
    return latex.tabular("l" + "c" * len(radii), header, body)


def accuracy_table(eval_dir: Path, models: list[str]) -> str:
    records = []
    for model in models:
        path = eval_dir / f"{model}.json"
        meta = results.load_json(path)
        results.require(meta, "clean_accuracy", path)
        results.require(meta, "robust_accuracy", path)
        records.append(meta)
    robust = [{float(k): v for k, v in m["robust_accuracy"].items()} for m in records]
    eps = sorted({e for r in robust for e in r})
    columns = [[latex.format_percent(meta["clean_accuracy"]) for meta in records]]
    columns += [[latex.format_percent(results.lookup(r, e)) for r in robust] for e in eps]
    columns = [latex.bold_max(col) for col in columns]
    span = rf"\multicolumn{{{len(eps)}}}{{c}}{{PGD ($\ell_2$) accuracy (\%)}}"
    header = (
        [latex.table_row(["", "", "", span]), rf"\cmidrule(lr){{4-{3 + len(eps)}}}"] if eps else []
    )
    eps_cells = [rf"$\epsilon = {latex.format_float(e)}$" for e in eps]
    header.append(latex.table_row(["Model", "Training", r"Clean (\%)", *eps_cells]))
    body = [
        latex.table_row(
            [
                rf"\texttt{{{latex.tex_escape(model)}}}",
                results.training_label(
                    str(meta.get("kind", "")),
                    meta.get("train_sigma", 0.0),
                    meta.get("train_eps", 0.0),
                ),
                *cells,
            ]
        )
        for model, meta, cells in zip(models, records, zip(*columns, strict=True), strict=True)
    ]
    return latex.tabular("ll" + "c" * (1 + len(eps)), header, body)


def _short(value):
    """A fraction or time to three decimals (what `dvc metrics show` can display in a line)."""
    return None if value is None else round(float(value), 3)


def model_summary(train: dict, evaluation: dict) -> dict:
    """A model's `dvc metrics show` line: clean and L2-PGD accuracy of its evaluation, final test
    accuracy under its training noise and training seconds of its record (None if not recorded)."""
    final = train.get("final") or {}
    out = {
        "clean": _short(evaluation["clean_accuracy"]),
        "noisy": _short(final.get("test_noise_accuracy")),
        "train_s": _short(train.get("seconds")),
    }
    return out | {f"pgd_{float(e):g}": _short(v) for e, v in evaluation["robust_accuracy"].items()}


def certify_summary(run: dict, radii: list[float]) -> dict:
    """A certify run's `dvc metrics show` line: abstention, ACR, certified accuracy per radius."""
    accuracy = metrics.certified_accuracy(run["radius"], run["correct"], radii)
    out = {"abstain": _short(run.get("abstain_rate")),
           "acr": _short(run.get("average_certified_radius"))}  # fmt: skip
    return out | {f"r_{r:g}": _short(a) for r, a in zip(radii, accuracy, strict=True)}


def summaries(args: argparse.Namespace) -> dict[Path, dict]:
    """Path -> content of every summary file."""
    out = {}
    for model in args.models:
        train = results.load_json(args.train_dir / f"{model}.json")
        evaluation = results.load_json(args.eval_dir / f"{model}.json")
        out[args.summary_dir / "models" / f"{model}.json"] = model_summary(train, evaluation)
    for run in args.runs:
        record = results.load_certify_run(args.certify_dir, run, {})
        out[args.summary_dir / "certify" / f"{run}.json"] = certify_summary(record, args.radii)
    return out


def build(args: argparse.Namespace) -> None:
    # Everything is computed before anything is written, so bad input leaves no partial output.
    certified = certified_table(args.certify_dir, args.runs, args.radii, args.reference)
    accuracy = accuracy_table(args.eval_dir, args.models)
    markdown = certified_markdown(args.certify_dir, args.runs, args.radii, args.reference)
    summary = summaries(args)
    write_text(args.out_dir / "certified_accuracy.tex", certified)
    write_text(args.out_dir / "certified_accuracy.md", markdown)
    write_text(args.out_dir / "accuracy.tex", accuracy)
    for path, content in summary.items():
        cli.write_json(path, content)


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    build(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
