"""Prepare one dataset into a single tensor file (uint8 images, both splits; ImageNet: a manifest).

    python scripts/prepare_data.py --dataset cifar10 --kind cifar10 --url URL --md5 MD5 \
        --archive none --n_train 50000 --n_test 10000 --out resources/data/cifar10.pt \
        --work_dir resources/downloads/cifar10 --log logs/prepare/cifar10.log
    python scripts/prepare_data.py --dataset synthetic --kind synthetic --seed 0 --n_train 5000 \
        --n_test 1000 --out resources/data/synthetic.pt --work_dir resources/downloads/synthetic \
        --log logs/prepare/synthetic.log
    python scripts/prepare_data.py --dataset imagenet --kind imagenet --folder resources/imagenet \
        --n_train 10000 --n_test 50000 --out resources/data/imagenet.pt \
        --work_dir resources/downloads/imagenet --log logs/prepare/imagenet.log
"""

from __future__ import annotations

from pathlib import Path

from robust import cli

KIND_FLAGS = {"cifar10": ("url", "md5", "archive"), "synthetic": ("seed",), "imagenet": ("folder",)}


def parse_args(argv: list[str] | None) -> cli.argparse.Namespace:
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset id (names the output)")
    parser.add_argument("--kind", required=True, choices=sorted(KIND_FLAGS))
    parser.add_argument("--url", help="cifar10: archive address (or a mirror)")
    parser.add_argument("--md5", help="cifar10: expected md5 of the archive")
    parser.add_argument("--archive", help="cifar10: local archive replacing the URL, or 'none'")
    parser.add_argument("--seed", type=int, help="synthetic: generator seed")
    parser.add_argument("--folder", type=Path, help="imagenet: root holding val/ (and train/)")
    parser.add_argument("--n_train", type=int, required=True, help="0: imagenet only")
    parser.add_argument("--n_test", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work_dir", type=Path, required=True, help="downloads and extraction")
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args(argv)
    for flag in KIND_FLAGS[args.kind]:
        if getattr(args, flag) is None:
            parser.error(f"--{flag} is required for --kind {args.kind}")
    if args.n_train == 0 and args.kind != "imagenet":
        parser.error(f"--n_train must be positive for --kind {args.kind}")
    return args


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log)
    from robust import data, download, imagenet, synthetic  # noqa: F401 - after argument checks

    if args.kind == "cifar10":
        archive = None if args.archive == "none" else Path(args.archive)
        data.prepare_cifar10(
            args.out,
            args.work_dir,
            url=args.url,
            md5=args.md5,
            archive=archive,
            n_train=args.n_train,
            n_test=args.n_test,
        )
    elif args.kind == "imagenet":
        imagenet.prepare_imagenet(args.out, args.folder, n_train=args.n_train, n_test=args.n_test)
    else:
        data.prepare_synthetic(args.out, seed=args.seed, n_train=args.n_train, n_test=args.n_test)
    cli.LOG.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
