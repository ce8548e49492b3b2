"""Score alignment of classifiers (Srinivas et al. 2023): LPIPS between each classifier's input
gradient and a diffusion model's score, on a fixed random subset of the test images.

Optional: it needs three local weight files (AlexNet, the LPIPS weights, an exported denoiser;
see config/README.md). When one is absent it writes a record {"skipped": true, "reason": ...}, a
header-only TSV and a comment-only table, says so in one line and exits 0. Otherwise it writes the
mean LPIPS per classifier with percentile-bootstrap 95% intervals over images and the paired
differences to the first classifier (JSON), one row per classifier and image (TSV) and a table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli

WEIGHTS = {"alexnet": "AlexNet weights", "lpips": "LPIPS weights", "denoiser": "denoiser"}
TSV_HEADER = "column\tmodel\tsigma\tidx\tlabel\tlpips\n"
DIGITS = 3  # decimals of LPIPS in the table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True, help="model ids; first = baseline")
    p.add_argument("--sigmas", nargs="+", type=float, required=True,
                   help="per model: 0 = the model, > 0 = smoothed with this noise std")  # fmt: skip
    p.add_argument("--m", type=int, required=True, help="noise draws (sigma > 0)")
    p.add_argument("--score_sigma", type=float, required=True, help="[-1,1] units")
    p.add_argument("--n_images", type=int, required=True)
    p.add_argument("--seed", type=int, required=True, help="images, noise, bootstrap")
    p.add_argument("--batch", type=int, required=True, help="inputs per pass")
    p.add_argument("--bootstrap", type=int, required=True, help="resamples")
    p.add_argument("--dataset", required=True, help="dataset name of --data")
    for flag in (*WEIGHTS, "models_dir", "data", "out", "per_image", "table"):
        p.add_argument(f"--{flag}", type=Path, required=True)
    cli.add_common(p)
    return p.parse_args(argv)


def column_ids(models: list[str], sigmas: list[float]) -> list[str]:
    """'<model>' for sigma 0, '<model>-smoothed-<sigma>' otherwise (params.yaml lists each pair
    once, with one sigma per model)."""
    from robust.latex import format_float

    pairs = zip(models, sigmas, strict=True)
    return [m if s == 0 else f"{m}-smoothed-{format_float(s)}" for m, s in pairs]


def skip(args: argparse.Namespace, missing: list[str]) -> int:
    """Write the skip record, an empty TSV and a comment-only table; one line on stderr."""
    from robust import io

    reason = "no " + ", no ".join(f"{WEIGHTS[k]} at {getattr(args, k)}" for k in missing)
    cli.write_json(args.out, {"skipped": True, "reason": reason})
    io.write_text(args.per_image, TSV_HEADER)
    io.write_text(args.table, f"% score alignment not computed: {reason}\n")
    cli.LOG.warning("score alignment skipped: %s (see config/README.md)", reason)
    return 0


def load_inputs(args: argparse.Namespace, device) -> tuple:
    """(models with their checkpoints, image indices, images, labels, LPIPS, denoiser)."""
    import torch

    from robust import checkpoint, data, lpips
    from robust.score_alignment import load_denoiser

    split = data.open_split(args.data, "test")
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(args.seed))
    idx = order[: args.n_images].sort().values
    x, y = split.get(idx)
    models = [checkpoint.load_checkpoint(args.models_dir / f"{m}.pt", device) for m in args.models]
    metric = lpips.load_lpips(args.alexnet, args.lpips, device)
    return models, idx, x.to(device), y, metric, load_denoiser(args.denoiser, device)


def summarize(args, ids: list[str], ckpts: list[dict], values: list, n: int) -> dict:
    """The JSON: settings, per-column mean LPIPS with intervals, paired differences."""
    from robust import bootstrap, results

    columns, diffs = {}, {}
    for cid, ckpt, sigma, v in zip(ids, ckpts, args.sigmas, values, strict=True):
        ci = bootstrap.percentile_interval(v, args.bootstrap, bootstrap.key_seed(args.seed, cid))
        params = ckpt["params"]
        info = results.column_info(ckpt["model_id"], params.get("kind"), sigma,
                                   params.get("sigma", 0.0), params.get("eps", 0.0))  # fmt: skip
        columns[cid] = info | {"lpips": ci.as_dict()}
        if cid != ids[0]:
            key = bootstrap.key_seed(args.seed, "paired", cid)
            diff = bootstrap.paired_difference(v, values[0], args.bootstrap, key)
            diffs[cid] = {"lpips": diff.as_dict()}
    settings = {k: getattr(args, k) for k in ("m", "score_sigma", "seed", "bootstrap", "dataset")}
    settings |= {"n_images": n, "confidence": 0.95, "columns": ids, "backbone": "alex"}
    settings |= {"weights": {k: str(getattr(args, k)) for k in WEIGHTS}}
    paired = {"baseline": ids[0], "columns": diffs}
    return {"skipped": False, "settings": settings, "columns": columns, "paired": paired}


def latex_table(summary: dict) -> str:
    """booktabs tabular: a row per classifier, mean LPIPS [95% interval] and the paired difference
    to the baseline; the lowest mean as displayed (the most aligned) in bold."""
    from robust import latex

    cols, diffs = summary["columns"], summary["paired"]["columns"]
    shown = {c: round(cols[c]["lpips"]["mean"], DIGITS) for c in summary["settings"]["columns"]}
    best = min(shown.values())  # the most aligned, as displayed
    rows = []
    for cid, mean in shown.items():
        cell = latex.interval_cell(cols[cid]["lpips"], DIGITS, mean == best)
        diff = latex.interval_cell(diffs[cid]["lpips"], DIGITS) if cid in diffs else "--"
        rows.append(latex.table_row([cols[cid]["title"], cell, diff]))  # the baseline has no diff
    baseline = cols[summary["paired"]["baseline"]]["title"]
    header = ["Classifier", r"LPIPS $\downarrow$", f"Difference to {baseline}"]
    return latex.tabular("lcc", [latex.table_row(header)], rows)


def tsv_text(ids, args, idx, labels, values) -> str:
    lines = [TSV_HEADER.rstrip("\n")]
    for cid, model, sigma, v in zip(ids, args.models, args.sigmas, values, strict=True):
        for i, label, d in zip(idx.tolist(), labels.tolist(), v.tolist(), strict=True):
            lines.append(f"{cid}\t{model}\t{sigma}\t{i}\t{label}\t{d:.6g}")
    return "\n".join(lines) + "\n"


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    ids = column_ids(args.models, args.sigmas)
    missing = [k for k in WEIGHTS if not getattr(args, k).is_file()]
    if missing:
        return skip(args, missing)
    import torch

    from robust import io, score_alignment

    device = cli.resolve_device(args.device)
    models, idx, x, labels, lpips, denoiser = load_inputs(args, device)
    scores = score_alignment.score_maps(denoiser, x, args.score_sigma, args.batch)
    values = []
    for cid, (model, _), sigma in zip(ids, models, args.sigmas, strict=True):
        noise = torch.Generator(device=device).manual_seed(args.seed)  # same draws per column
        values.append(score_alignment.score_alignment(
            model, x, scores, lpips, sigma=sigma, m=args.m, generator=noise, batch_size=args.batch
        ))  # fmt: skip
        cli.LOG.info("%s: mean LPIPS %.4f over %d images", cid, float(values[-1].mean()), len(x))
    summary = summarize(args, ids, [c for _, c in models], values, len(x))
    cli.write_json(args.out, summary)
    io.write_text(args.per_image, tsv_text(ids, args, idx, labels, values))
    io.write_text(args.table, latex_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
