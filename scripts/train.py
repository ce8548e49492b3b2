"""Train one classifier: standard, Gaussian-noise (Cohen et al.) or PGD-adversarial (Madry et al.).

The three kinds share one loop and differ only in the perturbation applied to each batch. A
resumable state is kept at --state (outside the declared outputs, which DVC deletes before a run): a
killed run started again with the same command continues where it stopped and ends with the same
weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
from pathlib import Path

from robust import cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    for flag in ("model_id", "dataset", "arch", "kind", "norm", "schedule"):
        p.add_argument(f"--{flag}", required=True)
    for flag in ("attack_steps", "epochs", "batch_size", "lr_step", "warmup_epochs", "eval_size",
                 "seed"):  # fmt: skip
        p.add_argument(f"--{flag}", type=int, required=True)
    for flag in ("sigma", "eps", "attack_step_size", "lr", "momentum", "weight_decay", "lr_gamma",
                 "label_smoothing", "eval_sigma"):  # fmt: skip
        p.add_argument(f"--{flag}", type=float, required=True)
    for flag in ("augment", "bf16", "channels_last"):
        p.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, required=True)
    for flag in ("data", "out", "metrics", "state"):  # state: resumable state (scratch)
        p.add_argument(f"--{flag}", type=Path, required=True)
    cli.add_common(p, record_time=True)
    return p.parse_args(argv)


def training_params(args: argparse.Namespace) -> dict:
    """Every argument that determines the weights (stored in the checkpoint and the metrics)."""
    skip = {"data", "out", "metrics", "state", "log", "device", "model_id", "record_time"}
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip}


def state_path(args: argparse.Namespace, params: dict) -> Path:
    """The resumable state of exactly this run: --state tagged with a fingerprint of the parameters
    and data, so a run with other parameters or data never resumes from it (it starts afresh)."""
    from robust.download import digest_of
    from robust.rowlog import fingerprint_of

    tag = fingerprint_of({**params, "data_md5": digest_of(args.data)})[:16]
    return args.state.with_name(f"{args.state.stem}.{tag}{args.state.suffix}")


def remove_stale_states(args: argparse.Namespace, kept: Path) -> None:
    """After a successful run: the states of this model's earlier parameter sets (exactly
    ``<state stem>.<16 hex digits><suffix>``), never another model's, never on failure."""
    stem, suffix = glob.escape(args.state.stem), glob.escape(args.state.suffix)
    for stale in args.state.parent.glob(f"{stem}.{'[0-9a-f]' * 16}{suffix}"):
        if stale != kept:
            cli.LOG.info("removing the state of other parameters: %s", stale)
            stale.unlink()


def epoch_line(row: dict, epochs: int) -> str:
    """One readable log line per epoch."""
    noisy = row["test_noise_accuracy"]
    text = f"epoch {row['epoch']}/{epochs}: loss {row['loss']:.4f}, train accuracy "
    text += f"{row['train_accuracy']:.4f}, test accuracy {row['test_accuracy']:.4f}"
    text += "" if noisy == row["test_accuracy"] else f" ({noisy:.4f} under noise)"
    return text + f", lr {row['lr']:.4g}, {row['seconds']:.1f} s"


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    from robust import checkpoint, data, models, training

    device = cli.resolve_device(args.device)
    train_split = data.open_split(args.data, "train")
    test_split = data.open_split(args.data, "test")
    kind = train_split.kind  # chooses classes and normalisation, whatever the dataset's id
    model = models.build_model(args.arch, kind, seed=args.seed).to(device)
    perturb = training.make_perturbation(
        args.kind, sigma=args.sigma, norm=args.norm, eps=args.eps, steps=args.attack_steps,
        step_size=args.attack_step_size,
    )  # fmt: skip
    params = training_params(args)
    fields = {field.name for field in dataclasses.fields(training.TrainConfig)}
    config = training.TrainConfig(**{k: v for k, v in params.items() if k in fields})
    timer = cli.Timer()
    state = state_path(args, params)
    bars = []  # one bar per epoch, counting its batches

    def show(epoch: int, done: int, batches: int) -> None:
        if done == 1:
            label = f"train {args.model_id} epoch {epoch + 1}/{args.epochs}"
            bars.append(cli.progress(label, batches, "batch"))
        bars[-1].update(1)
        if done == batches:
            bars[-1].close()  # its final state stays, above the epoch's log line

    history = training.train(
        model,
        train_split,
        test_split,
        perturb,
        config,
        state_path=state,
        log=lambda row: cli.LOG.info(epoch_line(row, args.epochs)),
        eval_size=args.eval_size,
        progress=show,
    )
    if not args.record_time:
        history = [{**row, "seconds": 0.0} for row in history]
    checkpoint.save_checkpoint(
        args.out, model, model_id=args.model_id, arch=args.arch, dataset=args.dataset,
        dataset_kind=kind, params=params,
    )  # fmt: skip
    remove_stale_states(args, state)
    record = {k: getattr(args, k) for k in ("model_id", "arch", "dataset", "kind")}
    record |= {"dataset_kind": kind, "params": params, "epochs": history, "final": history[-1]}
    cli.write_json(args.metrics, record | {"seconds": sum(row["seconds"] for row in history)})
    cli.LOG.info("wrote %s in %.1f s", args.out, timer.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
