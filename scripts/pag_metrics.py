"""Perceptual-alignment metrics of PAG columns, with 95% intervals over training runs and pairs.

A column is one PAG column or several joined by '+': the training runs (seeds) of one recipe. Per
column, run, generation eps and (start image, target) pair: the target share and probability of
every judge (one per kind: standard, adversarial, noise), alignment with the target's reference
image and two smoothness descriptors (robust.alignment), beside the two calibration controls;
two-level bootstrap intervals and Holm-corrected paired differences of every column minus the
first at the largest eps (robust.pag_summary). Writes the JSON, a TSV and a LaTeX table, and per
column the line `dvc metrics show` lists, <summary_dir>/<first run>.json: its target share under
each judge at the largest eps (keys std, adv, noise: the judge roles, short for a narrow table).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli

SHORT = {"standard": "std", "adversarial": "adv", "noise": "noise"}  # judge role -> summary key


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

    means = data.class_means(data.open_split(path, "train"))
    if kind == "class_means":
        return {"class_means": means}
    return {"prototypes": data.prototypes(path), "class_means": means}


def evaluate(args, records: dict, judges: dict, reference, device) -> tuple[dict, dict]:
    """(columns, controls): {name: {eps key: {metric: float64 [R, P]}}}."""
    import torch

    from robust import alignment

    by_role = {role: model for role, (model, _) in judges.items()}
    first = next(iter(records.values()))[0]
    x0, t, out = first["x0"].float(), first["targets"], {}

    def score(x):
        return alignment.pag_metrics(x0, x.float().to(device), t, reference, by_role, args.cutoff,
                                     args.batch)  # fmt: skip

    for column, runs in records.items():
        out[column] = {}
        for e, eps in enumerate(float(v) for v in first["eps"]):
            scored = [score(r["images"][e]) for r in runs]
            out[column][str(eps)] = {n: torch.stack([s[n] for s in scored]).numpy()
                                     for n in scored[0]}  # fmt: skip
    controls: dict = {"random": {}, "reference": {}}
    for eps in (float(v) for v in first["eps"]):
        generator = torch.Generator().manual_seed(args.seed)
        for name, x in alignment.controls(x0, t, reference, eps, generator).items():
            controls[name][str(eps)] = {n: v.numpy()[None] for n, v in score(x).items()}
    return out, controls


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    from robust import alignment, deps, io, pag_summary, results

    device = cli.resolve_device(args.device)
    runs = {column: column.split("+") for column in args.columns}
    records = load_columns(args.pag_dir, runs)
    judges = load_judges(args, records, device)
    refs = references(args.reference, args.data)
    specs = alignment.metric_specs(list(judges))
    metrics, controls = evaluate(args, records, judges, refs[args.reference], device)
    summary = pag_summary.summarize(metrics, controls, args.bootstrap, args.seed)
    at = summary["at"]
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
                    | {"runs": runs[c], "eps": summary["columns"][c]}
                    for c, rs in records.items()},
        "controls": {c: {"title": pag_summary.CONTROL_TITLES[c], "eps": v}
                     for c, v in summary["controls"].items()},
        "paired": {"baseline": args.columns[0], "eps": float(at), "correction": "Holm",
                   "columns": summary["paired"]},
    }  # fmt: skip
    pairs = pag_summary.judge_pairs(judges)
    out["judge_agreement"] = pag_summary.agreement(metrics, at, pairs, summary["columns"])
    out["settings"]["judges_apart"] = judges_apart(records, out["judges"])
    if len(refs) > 1:  # the class means ordered against the known prototypes
        other, _ = evaluate(args, records, {}, refs["class_means"], device)  # no judge needed
        joint = {
            c: {
                at: metrics[c][at]
                | {f"{n}_class_means": other[c][at][n] for n in alignment.REFERENCE_METRICS}
            }
            for c in metrics
        }
        out["reference_agreement"] = pag_summary.agreement(
            joint, at, [(n, f"{n}_class_means") for n in alignment.REFERENCE_METRICS],
            summary["columns"])  # fmt: skip
    for column, info in out["columns"].items():
        means = {n: round(info["eps"][at][n]["mean"], 3) for n in shown}
        cli.LOG.info("%s at eps %s: %s", column, at, means)
    cli.write_json(args.out, out)
    pairs = list(zip(*(first[k].tolist() for k in ("idx", "labels", "targets")), strict=True))
    io.write_text(args.per_image, pag_summary.tsv_text(metrics, controls, runs, pairs,
                                                       [s.name for s in specs]))  # fmt: skip
    io.write_text(args.table, pag_summary.latex_table(out, specs))
    for column, info in out["columns"].items():
        shares = {SHORT[role]: round(info["eps"][at][f"judge_{role}_share"]["mean"], 3)
                  for role in judges}  # fmt: skip
        cli.write_json(args.summary_dir / f"{deps.summary_name(column)}.json", shares)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
