"""Train one classifier: standard, Gaussian-noise (Cohen et al.) or PGD-adversarial (Madry et al.).

The three kinds share one loop and differ only in the perturbation applied to each batch. A
resumable state is kept at --state (outside the declared outputs, which DVC deletes before a run): a
killed run started again with the same command continues where it stopped and ends with the same
weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli

KINDS = {"standard": "none", "gaussian": "gaussian", "adversarial": "pgd"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--model_id", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--kind", required=True, choices=sorted(KINDS))
    p.add_argument("--sigma", type=cli.nonneg_float, required=True, help="training noise std")
    p.add_argument("--norm", required=True, choices=["l2", "linf"])
    p.add_argument("--eps", type=cli.nonneg_float, required=True, help="PGD training radius")
    p.add_argument("--attack_steps", type=cli.nonneg_int, required=True)
    p.add_argument("--attack_step_size", type=cli.nonneg_float, required=True)
    p.add_argument("--epochs", type=cli.positive_int, required=True)
    p.add_argument("--batch_size", type=cli.positive_int, required=True)
    p.add_argument("--lr", type=cli.positive_float, required=True)
    p.add_argument("--momentum", type=cli.nonneg_float, required=True)
    p.add_argument("--weight_decay", type=cli.nonneg_float, required=True)
    p.add_argument("--schedule", required=True, choices=["step", "cosine", "onecycle"])
    p.add_argument("--lr_step", type=cli.positive_int, required=True)
    p.add_argument("--lr_gamma", type=cli.positive_float, required=True)
    p.add_argument("--warmup_epochs", type=cli.nonneg_int, required=True)
    p.add_argument("--label_smoothing", type=cli.nonneg_float, required=True)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, required=True)
    p.add_argument("--eval_sigma", type=cli.nonneg_float, required=True)
    p.add_argument("--eval_size", type=cli.positive_int, required=True)
    p.add_argument("--seed", type=cli.nonneg_int, required=True)
    for flag, what in (
        ("--bf16", "bfloat16 autocast of forward, backward and attack (GPU speed)"),
        ("--channels_last", "NHWC model and batches (GPU speed)"),
    ):
        p.add_argument(flag, action=argparse.BooleanOptionalAction, required=True, help=what)
    p.add_argument("--data", type=Path, required=True, help="prepared dataset file")
    p.add_argument("--out", type=Path, required=True, help="checkpoint")
    p.add_argument("--metrics", type=Path, required=True, help="per-epoch metrics (JSON)")
    p.add_argument("--state", type=Path, required=True, help="resumable state (scratch)")
    cli.add_common(p, record_time=True)
    args = p.parse_args(argv)
    if args.kind == "gaussian" and args.sigma == 0.0:
        p.error("--kind gaussian needs --sigma > 0")
    if args.kind == "adversarial" and (args.eps == 0.0 or args.attack_steps == 0):
        p.error("--kind adversarial needs --eps > 0 and --attack_steps > 0")
    if args.label_smoothing >= 1.0:
        p.error(f"--label_smoothing must be below 1, got {args.label_smoothing}")
    return args


def training_params(args: argparse.Namespace) -> dict:
    """Every argument that determines the weights (stored in the checkpoint and the metrics)."""
    skip = {"data", "out", "metrics", "state", "log", "device", "model_id", "record_time"}
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip}


def state_path(args: argparse.Namespace, params: dict) -> Path:
    """The resumable state of exactly this run: --state with a fingerprint of the parameters and
    data.

    A run with other parameters or data never resumes from it (it starts afresh); states of earlier
    parameter sets of this model are removed.
    """
    from robust.download import md5_of
    from robust.rowlog import fingerprint_of

    tag = fingerprint_of({**params, "data_md5": md5_of(args.data)})[:16]
    path = args.state.with_name(f"{args.state.stem}.{tag}{args.state.suffix}")
    for stale in args.state.parent.glob(f"{args.state.stem}.*{args.state.suffix}"):
        if stale != path:
            cli.LOG.info("removing the state of other parameters: %s", stale)
            stale.unlink()
    return path


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log)
    from robust import checkpoint, data, models, perturbation, training

    device = cli.resolve_device(args.device)
    train_split = data.open_split(args.dataset, args.data, "train")
    test_split = data.open_split(args.dataset, args.data, "test")
    model = models.build_model(args.arch, args.dataset, seed=args.seed).to(device)
    perturb = perturbation.make_perturbation(
        KINDS[args.kind],
        sigma=args.sigma,
        norm=args.norm,
        eps=args.eps,
        steps=args.attack_steps,
        step_size=args.attack_step_size,
        random_start=True,
    )
    config = training.TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        lr_step=args.lr_step,
        lr_gamma=args.lr_gamma,
        warmup_epochs=args.warmup_epochs,
        augment=args.augment,
        label_smoothing=args.label_smoothing,
        eval_sigma=args.eval_sigma,
        bf16=args.bf16,
        channels_last=args.channels_last,
    )
    params = training_params(args)
    timer = cli.Timer()
    history = training.train(
        model,
        train_split,
        test_split,
        perturb,
        config,
        state_path=state_path(args, params),
        log=lambda row: cli.LOG.info("epoch %s", row),
        eval_size=args.eval_size,
    )
    if not args.record_time:
        history = [{**row, "seconds": 0.0} for row in history]
    checkpoint.save_checkpoint(
        args.out, model, model_id=args.model_id, arch=args.arch, dataset=args.dataset, params=params
    )
    cli.write_json(
        args.metrics,
        {
            "model_id": args.model_id,
            "arch": args.arch,
            "dataset": args.dataset,
            "kind": args.kind,
            "params": params,
            "epochs": history,
            "final": history[-1],
            "seconds": sum(row["seconds"] for row in history),
        },
    )
    cli.LOG.info("wrote %s in %.1f s", args.out, timer.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
