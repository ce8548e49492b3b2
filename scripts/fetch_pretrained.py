"""Download a published checkpoint and convert it into our checkpoint format.

The flags --url ... --eps are those of a `pretrained` entry of params.yaml. The result loads like a
trained model in every later stage. Downloads are cached under --cache_dir
(keyed by URL, shared by concurrent jobs). With --sha256 None the download is accepted unverified
and its sha256 is logged, for pinning, and recorded in the provenance (--record, the model's
training record: no epochs, the source instead).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    for flag in ("model_id", "url", "sha256", "format", "member", "arch", "dataset", "kind",
                 "norm"):  # fmt: skip
        p.add_argument(f"--{flag}", required=True)  # sha256: None = unpinned; member: none
    for flag in ("sigma", "eps"):
        p.add_argument(f"--{flag}", type=float, required=True)
    for flag in ("data", "cache_dir", "out", "record", "log"):  # record: provenance (JSON)
        p.add_argument(f"--{flag}", type=Path, required=True)
    args = p.parse_args(argv)
    args.sha256 = None if args.sha256 in ("None", "none", "null") else args.sha256
    args.member = None if args.member == "none" else args.member
    return args


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    from robust import checkpoint, data, pretrained

    kind = data.kind_of(args.data)  # the dataset's kind: classes and default normalisation

    cli.LOG.info("%s: fetching %s (cached in %s)", args.model_id, args.url, args.cache_dir)
    source, digest = pretrained.fetch_source(
        args.url, args.sha256, args.member, args.format, args.cache_dir
    )
    if args.sha256 is None:
        cli.LOG.warning("%s: sha256 not pinned; the download has sha256 %s", args.model_id, digest)
    model, info = pretrained.convert(source, args.format, args.arch, kind)
    params = {"kind": args.kind, "sigma": args.sigma, "norm": args.norm, "eps": args.eps}
    if info["source_epoch"] is not None:
        params["epochs"] = info["source_epoch"]
    provenance = {"url": args.url, "sha256": digest, "sha256_pinned": args.sha256 is not None,
                  "member": args.member, **info}  # fmt: skip
    checkpoint.save_checkpoint(args.out, model, model_id=args.model_id, arch=args.arch,
                               dataset=args.dataset, dataset_kind=kind, params=params,
                               extra={"pretrained": provenance})  # fmt: skip
    record = {k: getattr(args, k) for k in ("model_id", "arch", "dataset")} | {"dataset_kind": kind}
    record |= {"kind": args.kind, "params": params, "epochs": [], "final": {}, "seconds": 0.0}
    cli.write_json(args.record, {**record, "pretrained": provenance})
    cli.LOG.info("wrote %s from %s (%s format)", args.out, args.url, args.format)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
