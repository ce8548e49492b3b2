"""Prepare one dataset into a single tensor file (uint8 images, both splits; ImageNet: a manifest).

The flags after --kind are those of the kind's entry in params.yaml (cifar10: --url --md5 --archive;
synthetic: --seed; imagenet: --folder), then --n_train and --n_test.
"""

from __future__ import annotations

from pathlib import Path

from robust import cli

KIND_FLAGS = {"cifar10": ("url", "md5", "archive"), "synthetic": ("seed",), "imagenet": ("folder",)}


def parse_args(argv: list[str] | None) -> cli.argparse.Namespace:
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--kind", required=True, choices=KIND_FLAGS)
    for flag in ("url", "md5", "archive", "folder"):  # the flags of the kinds
        parser.add_argument(f"--{flag}")
    for flag in ("seed", "n_train", "n_test"):
        parser.add_argument(f"--{flag}", type=int, required=flag != "seed")
    for flag in ("out", "work_dir", "log"):  # work_dir: downloads
        parser.add_argument(f"--{flag}", type=Path, required=True)
    args = parser.parse_args(argv)
    missing = [f"--{flag}" for flag in KIND_FLAGS[args.kind] if getattr(args, flag) is None]
    if missing:
        parser.error(f"--kind {args.kind} needs {', '.join(missing)}")
    return args


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    from robust import download, imagenet, synthetic

    sizes = {"n_train": args.n_train, "n_test": args.n_test}
    if args.kind == "cifar10":
        archive = None if args.archive == "none" else Path(args.archive)
        bar = cli.progress(f"download {args.dataset}", None, "B")

        def show(received: int, total: int | None) -> None:
            bar.total = total
            bar.update(received - bar.n)

        download.prepare_cifar10(args.out, args.work_dir, args.url, args.md5, archive, **sizes,
                                 progress=show)  # fmt: skip
        bar.close()
    elif args.kind == "imagenet":
        imagenet.prepare_imagenet(args.out, args.folder, **sizes)
    else:
        synthetic.prepare_synthetic(args.out, seed=args.seed, **sizes)
    cli.LOG.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
