"""Download a published checkpoint and convert it into our checkpoint format.

    python scripts/fetch_pretrained.py --model_id cohen-cifar10-noise-025 --url URL --sha256 None \
        --format cohen --member models/cifar10/resnet110/noise_0.25/checkpoint.pth.tar \
        --arch cifar_resnet110 --dataset cifar10 --kind gaussian --sigma 0.25 --norm l2 --eps 0.0 \
        --cache_dir resources/downloads/pretrained --out results/models/cohen-cifar10-noise-025.pt \
        --record results/train/cohen-cifar10-noise-025.json \
        --log logs/pretrained/cohen-cifar10-noise-025.log

The result loads like a trained model in every later stage. Downloads are cached under --cache_dir
(keyed by URL, shared by concurrent jobs). With --sha256 None the download is accepted unverified
and its sha256 is logged, for pinning, and recorded in the provenance (--record, the model's
training record: no epochs, the source instead).
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from robust import cli

FORMATS = ("cohen", "robustness")  # robust.pretrained.FORMATS, without importing torch
UNPINNED = ("None", "none", "null")


def sha256_pin(text: str) -> str | None:
    if text in UNPINNED:
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise argparse.ArgumentTypeError(f"must be 64 lowercase hex digits or None, got {text}")
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--model_id", required=True)
    p.add_argument("--url", required=True, help="http(s) or file URL of the file to download")
    p.add_argument("--sha256", type=sha256_pin, required=True, help="expected digest, or None")
    p.add_argument("--format", required=True, choices=FORMATS, help="source checkpoint format")
    p.add_argument("--member", required=True, help="path inside the downloaded archive, or none")
    p.add_argument("--arch", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--kind", required=True, choices=["standard", "gaussian", "adversarial"])
    p.add_argument("--sigma", type=float, required=True, help="training noise std")
    p.add_argument("--norm", required=True, choices=["l2", "linf"])
    p.add_argument("--eps", type=float, required=True, help="adversarial radius")
    p.add_argument("--cache_dir", type=Path, required=True, help="shared download cache")
    p.add_argument("--out", type=Path, required=True, help="converted checkpoint")
    p.add_argument("--record", type=Path, required=True, help="provenance (JSON)")
    p.add_argument("--log", type=Path, required=True)
    args = p.parse_args(argv)
    if (args.kind == "gaussian") != (args.sigma > 0):
        p.error(f"--sigma {args.sigma} does not fit --kind {args.kind} (> 0 only for gaussian)")
    if (args.kind == "adversarial") != (args.eps > 0):
        p.error(f"--eps {args.eps} does not fit --kind {args.kind} (> 0 only for adversarial)")
    args.member = None if args.member == "none" else args.member
    return args


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log)
    from robust import checkpoint, download_cache, pretrained

    if args.member is not None:
        download_cache.check_member_name(args.member)  # before the download, not after
    cli.LOG.info("%s: fetching %s (cached in %s)", args.model_id, args.url, args.cache_dir)
    path, digest = download_cache.cached_fetch(args.url, args.cache_dir, args.sha256)
    if args.sha256 is None:
        cli.LOG.warning("%s: sha256 not pinned; the download has sha256 %s", args.model_id, digest)
    with tempfile.TemporaryDirectory(dir=args.cache_dir) as scratch:
        if args.member is not None:
            path = download_cache.extract_member(path, args.member, Path(scratch) / "member")
        source = pretrained.read_source(path)
    model, info = pretrained.convert(source, args.format, args.arch, args.dataset)
    params = {"kind": args.kind, "sigma": args.sigma, "norm": args.norm, "eps": args.eps}
    if info["source_epoch"] is not None:
        params["epochs"] = info["source_epoch"]
    provenance = {
        "url": args.url,
        "sha256": digest,
        "sha256_pinned": args.sha256 is not None,
        "member": args.member,
        **info,
    }
    checkpoint.save_checkpoint(
        args.out,
        model,
        model_id=args.model_id,
        arch=args.arch,
        dataset=args.dataset,
        params=params,
        extra={"pretrained": provenance},
    )
    record = {"model_id": args.model_id, "arch": args.arch, "dataset": args.dataset}
    record |= {"kind": args.kind, "params": params, "epochs": [], "final": {}, "seconds": 0.0}
    cli.write_json(args.record, {**record, "pretrained": provenance})
    cli.LOG.info("wrote %s from %s (%s format)", args.out, args.url, args.format)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
