"""Clean and PGD-robust accuracy of one classifier on a subset of the test split.

Step size follows the robustness-library convention: step_factor * eps / steps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--model_id", required=True)
    p.add_argument("--norm", required=True)
    p.add_argument("--eps", type=float, nargs="+", required=True)
    p.add_argument("--step_factor", type=float, required=True)
    for flag in ("steps", "skip", "max_images", "batch", "seed"):
        p.add_argument(f"--{flag}", type=int, required=True)
    p.add_argument("--random_start", action=argparse.BooleanOptionalAction, required=True)
    for flag in ("checkpoint", "data", "out"):
        p.add_argument(f"--{flag}", type=Path, required=True)
    cli.add_common(p)
    return p.parse_args(argv)


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    import torch

    from robust import attacks, checkpoint, data

    device = cli.resolve_device(args.device)
    model, ckpt = checkpoint.load_checkpoint(args.checkpoint, map_location=device)
    split = data.open_split(args.data, "test")
    idx = cli.subset_indices(len(split), args.skip, args.max_images)
    x, y = (t.to(device) for t in split.get(idx))
    generator = torch.Generator(device=device).manual_seed(args.seed)
    robust = {}
    with cli.progress(f"evaluate {args.model_id}", len(idx) * len(args.eps), "image") as bar:
        for eps in args.eps:
            robust[str(eps)] = attacks.robust_accuracy(
                model, x, y, norm=args.norm, eps=eps, steps=args.steps, batch_size=args.batch,
                step_size=args.step_factor * eps / args.steps, random_start=args.random_start,
                generator=generator, progress=bar.update,
            )  # fmt: skip
            cli.LOG.info("eps %s: robust accuracy %.4f", eps, robust[str(eps)])
    params = ckpt["params"]
    cli.write_json(args.out, {
        "model_id": args.model_id, "arch": ckpt["arch"], "kind": params.get("kind"),
        "train_sigma": params.get("sigma", 0.0), "train_eps": params.get("eps", 0.0),
        "n_images": len(idx), "norm": args.norm, "steps": args.steps,
        "robust_accuracy": robust, "clean_accuracy": attacks.robust_accuracy(
            model, x, y, norm=args.norm, eps=0.0, steps=0, step_size=0.0, batch_size=args.batch
        ),
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
