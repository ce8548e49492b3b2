"""Generate perceptually aligned images for one column: a model, plain (sigma 0) or smoothed (sigma
> 0).

Every column of one parameter set starts from the same (test image, target class) pairs and runs the
same targeted L2 PGD (steps, step = step_factor * eps / steps) at every generation eps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--column", required=True)
    p.add_argument("--model", required=True, help="model id")
    p.add_argument("--sigma", type=float, required=True, help="0: plain model")
    p.add_argument("--dataset", required=True)
    p.add_argument("--pairs", type=int, required=True)
    p.add_argument("--pair_skip", type=int, required=True)
    p.add_argument("--pair_seed", type=int, required=True)
    # Optional: DVC and Snakemake leave out the flag of an empty list (idx: [], targets: []).
    p.add_argument("--idx", type=int, nargs="+", help="start indices, one per pair")
    p.add_argument("--targets", type=int, nargs="+", help="targets, one per pair")
    p.add_argument("--eps", type=float, nargs="+", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--step_factor", type=float, required=True)
    p.add_argument("--m", type=int, required=True, help="noise draws per step")
    p.add_argument("--fixed_noise", action=argparse.BooleanOptionalAction, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    cli.add_common(p)
    return p.parse_args(argv)


def pairs(
    labels,
    num_classes: int,
    count: int,
    skip: int,
    seed: int,
    idx: list[int] | None = None,
    targets: list[int] | None = None,
):
    """(test indices, targets), int64 [count] each: idx = 0, skip, ... (or the given ``idx``);
    each target drawn uniformly among the other classes (or the given ``targets``)."""
    import torch

    if idx:
        chosen = torch.tensor(idx, dtype=torch.long)
        if len(chosen) != count or int(chosen.max()) >= len(labels):
            raise ValueError(f"pag: --idx needs {count} indices below {len(labels)}, got {idx}")
    else:
        chosen = torch.tensor(cli.subset_indices(len(labels), skip, count), dtype=torch.long)
        if len(chosen) < count:
            raise ValueError(
                f"pag: only {len(chosen)} test images at pair_skip {skip}, {count} pairs asked"
            )
    if targets:
        if len(targets) != count or max(targets) >= num_classes:
            raise ValueError(f"pag: --targets needs {count} classes below {num_classes}")
        return chosen, torch.tensor(targets, dtype=torch.long)
    shift = torch.randint(1, num_classes, (count,), generator=torch.Generator().manual_seed(seed))
    return chosen, (labels[chosen] + shift) % num_classes


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log)
    import torch

    from robust import checkpoint, data, pag

    device = cli.resolve_device(args.device)
    model, ckpt = checkpoint.load_checkpoint(args.checkpoint, map_location=device)
    for param in model.parameters():
        param.requires_grad_(False)  # only input gradients are needed
    split = data.open_split(args.dataset, args.data, "test")
    idx, targets = pairs(
        split.labels,
        split.num_classes,
        args.pairs,
        args.pair_skip,
        args.pair_seed,
        idx=args.idx,
        targets=args.targets,
    )
    x0, labels = split.get(idx)
    x0, targets_dev = x0.to(device), targets.to(device)
    images, target_prob = [], []
    for eps in args.eps:
        generator = torch.Generator(device=device).manual_seed(args.seed)
        if args.sigma > 0:
            scorer = pag.SmoothedScorer(model, args.sigma, args.m, args.fixed_noise, generator)
        else:
            scorer = pag.PlainScorer(model)
        x = pag.generate_pag(
            scorer,
            x0,
            targets_dev,
            eps=eps,
            steps=args.steps,
            step_size=args.step_factor * eps / args.steps,
            batch_size=args.batch,
        )
        if args.sigma > 0:
            check = torch.Generator(device=device).manual_seed(args.seed + 1)
            prob = pag.smoothed_probability(
                model, x, targets_dev, args.sigma, args.m, check, batch_size=args.batch * args.m
            )
        else:
            prob = pag.target_probability(model, x, targets_dev)
        cli.LOG.info("eps %s: mean target probability %.4f", eps, float(prob.mean()))
        images.append(x.cpu())
        target_prob.append(prob.cpu())
    params = ckpt["params"]
    from robust import io

    io.torch_save(
        {
            "column": args.column,
            "model_id": args.model,
            "kind": params.get("kind"),
            "train_sigma": params.get("sigma", 0.0),
            "train_eps": params.get("eps", 0.0),
            "sigma": args.sigma,
            "m": args.m,
            "fixed_noise": args.fixed_noise,
            "steps": args.steps,
            "step_factor": args.step_factor,
            "eps": list(args.eps),
            "idx": idx,
            "labels": labels,
            "targets": targets,
            "class_names": list(split.class_names),
            "x0": x0.cpu(),
            "images": torch.stack(images),
            "target_prob": torch.stack(target_prob).float(),
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
