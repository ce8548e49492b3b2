"""Perceptual-alignment metrics of PAG columns, with 95% intervals over training runs and pairs.

A column is one PAG column or several joined by '+': the training runs (seeds) of one recipe.
Per column, run, eps and pair: the metrics of robust.alignment beside two calibration controls,
two-level bootstrap intervals, Holm-corrected differences to the first column at the largest eps,
and how far the judges (and the references) agree on the order of the columns. Writes the JSON,
a TSV, a LaTeX table, and per column <summary_dir>/<first run>.json for `dvc metrics show`: the
target share under each judge at the largest eps (keys std, adv, noise, short for a narrow table).
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

from robust import cli, latex

SHORT = {"standard": "std", "adversarial": "adv", "noise": "noise"}  # judge role -> summary key
CONTROL_TITLES = {"random": "random direction (control)", "reference": "step to $r_t$ (control)"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--columns", nargs="+", required=True, help="PAG columns (runs joined by +)")
    p.add_argument("--judges", nargs="+", required=True, help="model ids of the judges")
    p.add_argument("--cutoff", type=float, required=True, help="fraction of Nyquist")
    for flag in ("bootstrap", "seed", "batch"):  # batch: images per judge pass
        p.add_argument(f"--{flag}", type=int, required=True)
    p.add_argument("--reference", required=True, help="prototypes or class_means")
    for flag in ("pag_dir", "models_dir", "data", "out", "per_image", "table", "summary_dir"):
        p.add_argument(f"--{flag}", type=Path, required=True)
    cli.add_common(p)
    return p.parse_args(argv)


def load_columns(pag_dir: Path, runs: dict[str, list[str]]) -> dict[str, list[dict]]:
    """column -> the PAG records of its runs; every record must share the pairs and eps."""
    import torch

    from robust import results

    records = {c: [results.load_pag(pag_dir / f"{r}.pt") for r in ids] for c, ids in runs.items()}
    first = next(iter(records.values()))[0]
    for run, record in ((r, x) for c in runs for r, x in zip(runs[c], records[c], strict=True)):
        for key in ("model_id", "arch"):
            results.require(record, key, pag_dir / f"{run}.pt")
        same = [torch.equal(record[k], first[k]) for k in ("idx", "targets")]
        if not all(same) or [float(e) for e in record["eps"]] != [float(e) for e in first["eps"]]:
            raise ValueError(f"PAG column {run} differs from the first one in its pairs or eps")
    return records


def load_judges(args: argparse.Namespace, records: dict, device) -> dict[str, tuple]:
    """role -> (model on device, checkpoint); a judge that made a column's images is an error."""
    from robust import alignment, checkpoint

    models = {r["column"]: str(r["model_id"]) for rs in records.values() for r in rs}
    loaded = {
        j: checkpoint.load_checkpoint(args.models_dir / f"{j}.pt", device) for j in args.judges
    }
    kinds = {j: str(ck["params"].get("kind")) for j, (_, ck) in loaded.items()}
    roles = alignment.check_judges(kinds, models)
    inside = {str(ck["model_id"]): kinds[j] for j, (_, ck) in loaded.items()}
    alignment.check_judges(inside, models)  # the ids inside the checkpoints count too
    if len({str(ck["dataset"]) for _, ck in loaded.values()}) > 1:
        raise ValueError(f"judges {', '.join(args.judges)} were trained on different datasets")
    return {role: loaded[judge] for role, judge in roles.items()}


def judges_apart(records: dict, judges: dict) -> dict[str, bool]:
    """Whether every judge has another architecture, and another seed, than every model under
    test (a released checkpoint has no known seed and counts as apart)."""
    runs = [r for rs in records.values() for r in rs]
    archs, seeds = {r["arch"] for r in runs}, {r.get("train_seed") for r in runs} - {None}
    return {
        "architecture": all(j["arch"] not in archs for j in judges.values()),
        "seed": all(j["seed"] is None or j["seed"] not in seeds for j in judges.values()),
    }


def references(kind: str, path: Path) -> dict:
    """name -> reference image per class, float32 [K, C, H, W] in [0, 1]: the chosen one first,
    class means beside prototypes where the dataset has them (to check that they agree)."""
    from robust import data

    chosen = {"prototypes": data.prototypes(path)} if kind == "prototypes" else {}
    return chosen | {"class_means": data.class_means(data.open_split(path, "train"))}


def evaluate(args, records: dict, judges: dict, reference, device) -> tuple[dict, dict]:
    """(columns, controls): {name: {eps key (str(float)): {metric: float64 [R, P]}}}, R training
    runs of the column's recipe (1 for a control) by P (start image, target) pairs."""
    import torch

    from robust import alignment

    by_role = {role: model for role, (model, _) in judges.items()}
    first = next(iter(records.values()))[0]
    x0, t, eps_values = first["x0"].float(), first["targets"], [float(e) for e in first["eps"]]

    def score(images: list) -> dict:  # {metric: [R, P]} of the images [P, C, H, W] of R runs
        scored = [alignment.pag_metrics(x0, x.float().to(device), t, reference, by_role,
                                        args.cutoff, args.batch) for x in images]  # fmt: skip
        return {n: torch.stack([s[n] for s in scored]).numpy() for n in scored[0]}

    out: dict = {column: {} for column in records}
    for column, runs in records.items():
        for e, eps in enumerate(eps_values):
            out[column][str(eps)] = score([r["images"][e] for r in runs])
    controls: dict = {"random": {}, "reference": {}}
    for eps in eps_values:
        generator = torch.Generator().manual_seed(args.seed)
        for name, x in alignment.controls(x0, t, reference, eps, generator).items():
            controls[name][str(eps)] = score([x])
    return out, controls


def agreement(metrics: dict, at: str, pairs: list[tuple[str, str]], intervals: dict) -> list[dict]:
    """For each (metric a, metric b) at eps ``at``: Kendall's tau of the column means (None where
    undefined), whether the order is the same, and whether b keeps the order of every pair of
    columns that a tells apart (non-overlapping ``intervals``), which near-ties cannot upset."""
    from robust.alignment import kendall_tau

    out = []
    for a, b in pairs:
        means_a, means_b = ({c: float(s[at][n].mean()) for c, s in metrics.items()} for n in (a, b))
        tau = kendall_tau(list(means_a.values()), list(means_b.values()))
        resolved = [
            (hi, lo) for hi, lo in itertools.permutations(metrics, 2)
            if intervals[hi][at][a]["low"] > intervals[lo][at][a]["high"]
        ]  # fmt: skip
        out.append({
            "metrics": [a, b], "kendall_tau": None if math.isnan(tau) else tau,
            "same_order": tau == 1.0, "resolved_pairs": len(resolved),
            "resolved_same_order": all(means_b[hi] > means_b[lo] for hi, lo in resolved),
        })  # fmt: skip
    return out


def latex_table(summary: dict, specs: list) -> str:
    """booktabs tabular at the comparison eps of the shown metrics: a row per column (mean [95%
    interval], +- the seed SD for several runs, the best as displayed in bold, a dagger where the
    difference to the first column survives Holm), then the control rows."""
    specs = [s for s in specs if s.shown]
    key, paired = summary["settings"]["eps_key"], summary["paired"]["columns"]
    groups = {s.group: sum(t.group == s.group for t in specs) for s in specs}
    top = [f"\\multicolumn{{{n}}}{{c}}{{{latex.tex_escape(g)}}}" for g, n in groups.items()]
    ends = itertools.accumulate(groups.values(), initial=1)  # table column 1 holds the row titles
    rules = [f"\\cmidrule(lr){{{a + 1}-{b}}}" for a, b in itertools.pairwise(ends)]
    arrow = {"max": r"$\uparrow$", "min": r"$\downarrow$"}
    labels = [f"{s.label} {arrow[s.better]}" for s in specs]
    header = [latex.table_row(["", *top]), " ".join(rules), latex.table_row(["Column", *labels])]
    columns, controls = summary["columns"], summary["controls"]
    rows = [[c["title"]] for c in columns.values()]
    control_rows = [[CONTROL_TITLES[c]] for c in controls]
    for s in specs:
        digits = 1 if s.name == "tv_per_norm" else 2  # TV per norm is O(10-100), the rest O(1)
        shown = [round(c["eps"][key][s.name]["mean"], digits) for c in columns.values()]
        best = max(shown) if s.better == "max" else min(shown)
        for row, (cid, c), v in zip(rows, columns.items(), shown, strict=True):
            stat = c["eps"][key][s.name]
            cell = latex.interval_cell(stat, digits, v == best)
            if stat.get("seed_sd") is not None:
                cell += rf" {{\scriptsize$\pm${latex.table_number(stat['seed_sd'], digits)}}}"
            holds = paired.get(cid, {}).get(s.name, {}).get("holds", False)
            row.append(cell + (r"$^\dagger$" if holds else ""))
        for row, c in zip(control_rows, controls.values(), strict=True):
            row.append(latex.interval_cell(c["eps"][key][s.name], digits))
    body = [latex.table_row(r) for r in rows] + [r"\midrule"]
    body += [latex.table_row(r) for r in control_rows]
    return latex.tabular("l" + "c" * len(specs), header, body)


def tsv_text(metrics: dict, controls: dict, runs: dict, pairs: list, names: list[str]) -> str:
    """Header and one line per (column, training run, eps, pair); controls with run '-'."""
    lines = ["\t".join(["column", "run", "eps", "pair", "idx", "label", "target", *names])]
    every = [(c, runs[c], s) for c, s in metrics.items()] + [
        (f"control:{c}", ["-"], s) for c, s in controls.items()
    ]
    for column, run_ids, sweep in every:
        for key, values in sweep.items():
            for r, run in enumerate(run_ids):
                for i, pair in enumerate(pairs):
                    cells = [column, run, key, str(i), *map(str, pair)]
                    cells += [f"{float(values[n][r][i]):.6g}" for n in names]
                    lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    from robust import alignment, bootstrap, deps, io, results

    device = cli.resolve_device(args.device)
    runs = {column: column.split("+") for column in args.columns}
    records = load_columns(args.pag_dir, runs)
    judges = load_judges(args, records, device)
    refs = references(args.reference, args.data)
    specs = alignment.metric_specs(list(judges))
    metrics, controls = evaluate(args, records, judges, refs[args.reference], device)
    baseline = args.columns[0]
    at = max(metrics[baseline], key=float)  # the eps of the comparisons: the largest
    per_column, paired = bootstrap.summarize_runs(metrics, baseline, at, args.bootstrap, args.seed)
    # the controls take no part in the comparisons
    per_control, _ = bootstrap.summarize_runs(controls, "random", at, args.bootstrap, args.seed)
    first = next(iter(records.values()))[0]
    shown = [s.name for s in specs if s.shown]
    out = {
        "settings": {
            "cutoff": args.cutoff, "bootstrap": args.bootstrap, "seed": args.seed,
            "reference": args.reference, "confidence": 0.95, "columns": args.columns,
            "runs": runs, "n_pairs": len(first["idx"]), "eps": [float(e) for e in first["eps"]],
            "eps_key": at, "metrics": [s.name for s in specs], "shown": shown,
        },
        "judges": {role: {k: str(ck[k]) for k in ("model_id", "arch")}
                   | {k: ck["params"].get(k) for k in ("kind", "seed", "sigma", "norm", "eps")}
                   for role, (_, ck) in judges.items()},
        "metrics": {s.name: {"group": s.group, "label": s.label, "better": s.better}
                    for s in specs},
        "columns": {c: results.column_info(rs[0]["model_id"], rs[0]["kind"], rs[0]["sigma"],
                                           rs[0]["train_sigma"], rs[0]["train_eps"])
                    | {"runs": runs[c], "eps": per_column[c]}
                    for c, rs in records.items()},
        "controls": {c: {"title": CONTROL_TITLES[c], "eps": v} for c, v in per_control.items()},
        "paired": {"baseline": baseline, "eps": float(at), "correction": "Holm",
                   "columns": paired},
    }  # fmt: skip
    role_pairs = itertools.combinations(judges, 2)
    pairs = [(f"judge_{a}_{k}", f"judge_{b}_{k}") for a, b in role_pairs for k in ("share", "prob")]
    out["judge_agreement"] = agreement(metrics, at, pairs, per_column)
    out["settings"]["judges_apart"] = judges_apart(records, out["judges"])
    if len(refs) > 1:  # the class means ordered against the known prototypes
        other, _ = evaluate(args, records, {}, refs["class_means"], device)  # no judge needed
        ref_names = alignment.REFERENCE_METRICS
        joint = {c: {at: metrics[c][at] | {f"{n}_class_means": other[c][at][n] for n in ref_names}}
                 for c in metrics}  # fmt: skip
        pairs = [(n, f"{n}_class_means") for n in ref_names]
        out["reference_agreement"] = agreement(joint, at, pairs, per_column)
    cli.write_json(args.out, out)
    image_pairs = zip(*(first[k].tolist() for k in ("idx", "labels", "targets")), strict=True)
    names = out["settings"]["metrics"]
    io.write_text(args.per_image, tsv_text(metrics, controls, runs, list(image_pairs), names))
    io.write_text(args.table, latex_table(out, specs))
    for column, info in out["columns"].items():
        stats = info["eps"][at]
        cli.LOG.info("%s at eps %s: %s", column, at, {n: round(stats[n]["mean"], 3) for n in shown})
        shares = {SHORT[role]: round(stats[f"judge_{role}_share"]["mean"], 3) for role in judges}
        cli.write_json(args.summary_dir / f"{deps.summary_name(column)}.json", shares)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
