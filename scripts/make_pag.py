"""Generate perceptually aligned images for one column: a model, plain (sigma 0) or smoothed.

Every column of one parameter set starts from the same (test image, target class) pairs and runs the
same targeted L2 PGD (steps, step = step_factor * eps / steps) at every generation eps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    for flag in ("column", "model", "dataset"):
        p.add_argument(f"--{flag}", required=True)
    for flag in ("pairs", "pair_skip", "pair_seed", "steps", "m", "batch", "seed"):
        p.add_argument(f"--{flag}", type=int, required=True)
    # Optional: DVC and Snakemake leave out the flag of an empty list (idx: [], targets: []).
    p.add_argument("--idx", type=int, nargs="+", help="start indices, one per pair")
    p.add_argument("--targets", type=int, nargs="+", help="target classes, one per pair")
    p.add_argument("--eps", type=float, nargs="+", required=True, help="generation radii")
    for flag in ("sigma", "step_factor"):  # sigma 0: the plain model
        p.add_argument(f"--{flag}", type=float, required=True)
    p.add_argument("--fixed_noise", action=argparse.BooleanOptionalAction, required=True)
    for flag in ("checkpoint", "data", "out"):
        p.add_argument(f"--{flag}", type=Path, required=True)
    cli.add_common(p)
    return p.parse_args(argv)


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    import torch

    from robust import checkpoint, data, io, pag

    device = cli.resolve_device(args.device)
    model, ckpt = checkpoint.load_checkpoint(args.checkpoint, map_location=device)
    model.requires_grad_(False)  # only input gradients are needed
    split = data.open_split(args.data, "test")
    idx, targets = pag.pairs(split.labels, split.num_classes, args.pairs, args.pair_skip,
                             args.pair_seed, args.idx, args.targets)  # fmt: skip
    x0, labels = split.get(idx)
    x0, targets_dev = x0.to(device), targets.to(device)
    images, target_prob = [], []
    batches = -(-len(idx) // args.batch)  # ceil
    bar = cli.progress(f"pag {args.column}", len(args.eps) * batches * args.steps, "step")
    for eps in args.eps:
        generator = torch.Generator(device=device).manual_seed(args.seed)
        if args.sigma > 0:
            scorer = pag.SmoothedScorer(model, args.sigma, args.m, args.fixed_noise, generator)
        else:
            scorer = pag.PlainScorer(model)
        x = pag.generate_pag(scorer, x0, targets_dev, eps=eps, steps=args.steps,
                             step_size=args.step_factor * eps / args.steps, batch_size=args.batch,
                             progress=bar.update)  # fmt: skip
        if args.sigma > 0:  # the smoothed classifier's probability, on fresh noise
            check = torch.Generator(device=device).manual_seed(args.seed + 1)
            prob = pag.smoothed_probability(
                model, x, targets_dev, args.sigma, args.m, check, batch_size=args.batch * args.m
            )
        else:
            prob = pag.target_probability(model, x, targets_dev)
        cli.LOG.info("eps %s: mean target probability %.4f", eps, float(prob.mean()))
        images.append(x.cpu())
        target_prob.append(prob.cpu())
    bar.close()
    params = ckpt["params"]
    record = {k: getattr(args, k) for k in ("column", "sigma", "m", "fixed_noise", "steps",
                                            "step_factor")}  # fmt: skip
    record |= {"model_id": args.model, "kind": params.get("kind"), "eps": list(args.eps),
               "train_sigma": params.get("sigma", 0.0), "train_eps": params.get("eps", 0.0),
               "arch": str(ckpt["arch"]), "train_seed": params.get("seed"),
               "idx": idx, "labels": labels, "targets": targets, "x0": x0.cpu(),
               "class_names": list(split.class_names), "images": torch.stack(images),
               "target_prob": torch.stack(target_prob).float()}  # fmt: skip
    io.torch_save(record, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
