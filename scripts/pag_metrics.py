"""Perceptual-alignment metrics of PAG columns, with percentile-bootstrap 95% intervals over pairs.

Per column, generation eps and (start image, target) pair: agreement of independent judges,
alignment with the target's reference image (prototype or class mean) and the structure of the
perturbation (robust.alignment); paired differences of every column minus the first at the largest
eps. Writes the JSON metrics, a TSV (one row per column, eps and pair) and a LaTeX table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--columns", nargs="+", required=True, help="PAG columns; first = baseline")
    p.add_argument("--judges", nargs="+", required=True, help="model ids of the judges")
    p.add_argument("--judge_roles", nargs="+", required=True, help="one role per judge")
    p.add_argument("--cutoff", type=float, required=True, help="fraction of Nyquist")
    p.add_argument("--bootstrap", type=int, required=True, help="resamples")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--reference", choices=["prototypes", "class_means"], required=True)
    p.add_argument("--batch", type=int, default=500, help="images per judge pass")
    for flag in ("--pag_dir", "--models_dir", "--data", "--out", "--per_image", "--table"):
        p.add_argument(flag, type=Path, required=True)
    cli.add_common(p)
    return p.parse_args(argv)


def load_columns(pag_dir: Path, columns: list[str]) -> list[dict]:
    """PAG records; all columns must share their (idx, target) pairs and generation eps."""
    import torch

    from robust import results

    if len(set(columns)) != len(columns):
        raise ValueError(f"--columns lists a column twice: {' '.join(columns)}")
    records = [results.load_pag(pag_dir / f"{c}.pt") for c in columns]
    first = records[0]
    for column, record in zip(columns, records, strict=True):
        for key in ("model_id", "idx"):
            results.require(record, key, pag_dir / f"{column}.pt")
        same = [torch.equal(record[k], first[k]) for k in ("idx", "targets")]
        if not all(same) or [float(e) for e in record["eps"]] != [float(e) for e in first["eps"]]:
            raise ValueError(f"columns {columns[0]} and {column} differ in their pairs or eps")
    return records


def load_judges(args: argparse.Namespace, records: list[dict], device) -> list[tuple]:
    """[(role, model on device, checkpoint)]; a judge that made a column's images is an error."""
    from robust import alignment, checkpoint

    models = {c: str(r["model_id"]) for c, r in zip(args.columns, records, strict=True)}
    alignment.check_judges(args.judges, args.judge_roles, models)
    judges = []
    for judge, role in zip(args.judges, args.judge_roles, strict=True):
        model, ckpt = checkpoint.load_checkpoint(args.models_dir / f"{judge}.pt", device)
        alignment.check_judges([str(ckpt["model_id"])], [role], models)  # the id inside counts too
        if ckpt["dataset"] != (judges[0][2] if judges else ckpt)["dataset"]:
            raise ValueError(
                f"judge '{judge}' was trained on {ckpt['dataset']}, not on the others' data"
            )
        judges.append((role, model, ckpt))
    return judges


def reference_images(kind: str, path: Path, dataset: str):
    """Reference image per class, float32 [K, C, H, W] in [0, 1]."""
    from robust import data

    if kind == "prototypes":
        return data.prototypes(path)
    return data.class_means(data.open_split(dataset, path, "train"))


def evaluate(args, records: list[dict], judges: list[tuple], reference, device) -> dict:
    """{column: {eps key: {metric: float64 [P]}}}; eps keys as str(float(eps))."""
    from robust import alignment

    by_role = {role: model for role, model, _ in judges}
    out = {}
    for column, r in zip(args.columns, records, strict=True):
        x0, t = r["x0"].float(), r["targets"]
        out[column] = {
            str(float(eps)): alignment.pag_metrics(
                x0, x.float().to(device), t, reference, by_role, args.cutoff, args.batch
            )
            for eps, x in zip(r["eps"], r["images"], strict=True)
        }
    return out


def latex_table(summary: dict, specs: list, key: str) -> str:
    """booktabs tabular at eps ``key``: a row per column, grouped metric columns, best mean bold."""
    from robust import latex

    groups = {s.group: sum(t.group == s.group for t in specs) for s in specs}
    top = [f"\\multicolumn{{{n}}}{{c}}{{{latex.tex_escape(g)}}}" for g, n in groups.items()]
    arrow = {"max": r"$\uparrow$", "min": r"$\downarrow$"}
    labels = [f"{s.label} {arrow[s.better]}" for s in specs]
    rules, first = [], 2  # table column 1 holds the row titles
    for n in groups.values():
        rules, first = rules + [f"\\cmidrule(lr){{{first}-{first + n - 1}}}"], first + n
    header = [latex.table_row(["", *top]), " ".join(rules), latex.table_row(["Column", *labels])]
    columns = list(summary["columns"].values())
    rows = [[c["title"]] for c in columns]
    for s in specs:
        digits = 1 if s.name == "tv_per_norm" else 2  # TV per norm is O(10-100), the rest O(1)
        shown = [round(c["eps"][key][s.name]["mean"], digits) for c in columns]
        best = max(shown) if s.better == "max" else min(shown)
        for row, c, v in zip(rows, columns, shown, strict=True):
            row.append(latex.interval_cell(c["eps"][key][s.name], digits, v == best))
    return latex.tabular("l" + "c" * len(specs), header, [latex.table_row(r) for r in rows])


def tsv_text(records: list[dict], metrics: dict, names: list[str]) -> str:
    """Header and one line per (column, eps, pair)."""
    lines = ["\t".join(["column", "eps", "pair", "idx", "label", "target", *names])]
    for (column, sweep), r in zip(metrics.items(), records, strict=True):
        pairs = list(zip(*(r[k].tolist() for k in ("idx", "labels", "targets")), strict=True))
        for key, values in sweep.items():
            for i, pair in enumerate(pairs):
                cells = [column, key, str(i), *map(str, pair)]
                lines.append("\t".join(cells + [f"{float(values[n][i]):.6g}" for n in names]))
    return "\n".join(lines) + "\n"


def build_summary(args, records: list[dict], judges: list[tuple], metrics: dict, specs) -> dict:
    """The JSON: settings, judges, metrics, per-column intervals, paired differences."""
    from robust import alignment, bootstrap, results

    at = max(metrics[args.columns[0]], key=float)
    per_column, paired = bootstrap.summarize_sweep(
        metrics, args.columns[0], at, args.bootstrap, args.seed
    )
    c, h, w = records[0]["x0"].shape[1:]
    settings = {k: getattr(args, k) for k in ("cutoff", "bootstrap", "seed", "reference")}
    settings |= {"confidence": 0.95, "n_pairs": len(records[0]["idx"]), "columns": args.columns}
    settings["eps"] = [float(e) for e in records[0]["eps"]]
    settings["metrics"] = [s.name for s in specs]  # table order (the JSON's keys are sorted)
    settings["white_noise"] = alignment.white_noise_reference(c, h, w, args.cutoff)
    columns = zip(args.columns, records, strict=True)
    return {
        "settings": settings,
        "judges": {role: judge_info(ck) for role, _, ck in judges},
        "metrics": {
            s.name: {"group": s.group, "label": s.label, "better": s.better} for s in specs
        },
        "columns": {
            c: results.column_info(
                r["model_id"],
                r["kind"],
                r.get("sigma", 0.0),
                r.get("train_sigma", 0.0),
                r.get("train_eps", 0.0),
            )
            | {"eps": per_column[c]}
            for c, r in columns
        },  # fmt: skip
        "paired": {"baseline": args.columns[0], "eps": float(at), "columns": paired},
    }


def judge_info(ckpt: dict) -> dict:
    """Provenance of a judge: model id, architecture and training seed."""
    return {k: str(ckpt[k]) for k in ("model_id", "arch")} | {"seed": ckpt["params"].get("seed")}


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log)
    from robust import alignment, io

    device = cli.resolve_device(args.device)
    records = load_columns(args.pag_dir, args.columns)
    judges = load_judges(args, records, device)
    reference = reference_images(args.reference, args.data, str(judges[0][2]["dataset"]))
    specs = alignment.metric_specs(args.judge_roles)
    metrics = evaluate(args, records, judges, reference, device)
    summary = build_summary(args, records, judges, metrics, specs)
    at = str(summary["paired"]["eps"])
    for column, info in summary["columns"].items():
        means = {n: round(v["mean"], 3) for n, v in info["eps"][at].items()}
        cli.LOG.info("%s at eps %s: %s", column, at, means)
    cli.write_json(args.out, summary)
    io.write_text(args.per_image, tsv_text(records, metrics, [s.name for s in specs]))
    io.write_text(args.table, latex_table(summary, specs, at))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
