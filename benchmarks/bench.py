"""Speed figures of the pipeline and their baselines, measured side by side in one run.

    python benchmarks/bench.py --mode cpu|gpu --out benchmarks/results-<mode>.json --repeats R

Figures: CERTIFY in s/image (a Cohen-style loop vs ``Smooth.certify`` one image per call and on a
block of images, in fp32 and bf16), PAG noisy gradient evaluations/s, training images/s, pipeline
no-op wall time; plus the fidelity checks (bf16's agreement with fp32, reported; fp32's
independence of batch size and grouping). Every figure is
the median, min and max over the repeats, after one warm-up run. benchmarks/README.md explains them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import benchlib as lib  # noqa: E402  (beside this file)
import certify_speed  # noqa: E402
import fidelity  # noqa: E402

from robust.cli import write_json  # noqa: E402
from robust.smoothing import PRECISIONS  # noqa: E402

SIGMA, ALPHA, SEED = lib.SIGMA, lib.ALPHA, lib.SEED
# Per mode: certify arch; images of the Smooth paths and of the baseline; n0, n; batch (all paths);
# noise chunk; fp32/bf16 samples compared per image and images compared;
# batch-size check (images, other batch); PAG (images, m, steps); training (arch, images, batch)
# per architecture; synthetic training (images, epochs, batch).
SIZES = {
    "gpu": dict(arch="cifar_resnet110", images=20, base_images=3, n0=100, n=100_000, batch=10_000,
                chunk=1000, agree=5_000, agree_images=50, bs_check=(4, 3_001),
                pag=(32, 64, 10),
                train=(("tiny_cnn", 20_000, 500), ("airbench", 20_000, 500)),
                synthetic=(10_000, 4, 500)),
    "cpu": dict(arch="tiny_cnn", images=3, base_images=2, n0=100, n=2_000, batch=1_000,
                chunk=100, agree=100, agree_images=40, bs_check=(1, 333),
                pag=(4, 16, 3),
                train=(("tiny_cnn", 1_024, 256), ("airbench", 128, 64)),
                synthetic=(2_048, 3, 128)),
    "quick": dict(arch="tiny_cnn", images=2, base_images=1, n0=32, n=300, batch=300,
                  chunk=100, agree=200, agree_images=2, bs_check=(1, 77),
                  pag=(2, 8, 2),
                  train=(("tiny_cnn", 256, 128),), synthetic=(512, 2, 128)),
}  # fmt: skip

# What a run measures, in this order; --phases picks some (a GPU run split over time-limited calls).
PHASES = ("certify", "pag", "train", "pipeline", "fidelity")


def load_images(data: Path | None, count: int, device: torch.device) -> torch.Tensor:
    """``count`` images [count, 3, 32, 32] in [0, 1]: every 20th test image of a prepared dataset
    file (Cohen et al.'s subset), or seeded uniform noise images."""
    if data is None:
        x = torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(SEED))
        return x.to(device)
    x = torch.load(data, weights_only=True)["x_test"][::20][:count]
    return (x.float() / 255.0).to(device)


def prepare(args: argparse.Namespace, s: dict, device: torch.device):
    """(model, images, description of the weights) for the certify, PAG and fidelity figures."""
    if args.checkpoint is not None:
        from robust.checkpoint import load_checkpoint

        model = load_checkpoint(args.checkpoint, map_location=device)[0]
        return model, load_images(args.data, s["pool"], device), str(args.checkpoint)
    if args.weights == "synthetic" and args.data is None:
        try:
            return lib.synthetic_model(s["arch"], device, s)
        except Exception as err:  # data or training code of other modules: fall back, say so
            note = f"; synthetic training failed ({type(err).__name__}: {err})"[:300]
    else:
        note = ""
    xs = load_images(args.data, s["pool"], device)
    return lib.random_model(s["arch"], device, xs), xs, "random init, BN calibrated" + note


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("cpu", "gpu"), required=True)
    p.add_argument("--out", type=Path, required=True, help="JSON results")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per figure (>= 1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, no pipeline timing (tests)")
    p.add_argument("--pipeline_repo", type=Path, help="a copy built by Snakemake and DVC: also "
                   "time snakemake and dvc repro with nothing to do there")  # fmt: skip
    p.add_argument("--checkpoint", type=Path, help="trained robust checkpoint to certify")
    p.add_argument(
        "--weights",
        choices=("synthetic", "random"),
        help="without --checkpoint: "
        "brief noise training on synthetic shapes (default) or random (--quick)",
    )
    p.add_argument("--data", type=Path, help="prepared dataset .pt: use its test images")
    p.add_argument("--arch", help="architecture for certify and PAG (default: per mode)")
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   help="precisions of the block path, comma-separated, fp32 first")  # fmt: skip
    p.add_argument(
        "--compile",
        help="also time the block path under torch.compile with "
        "this mode (default, reduce-overhead, max-autotune, ...)",
    )
    p.add_argument("--phases", default=",".join(PHASES), help="what to measure, comma-separated, "
                   f"in this order: {', '.join(PHASES)} (fidelity needs certify)")  # fmt: skip
    p.add_argument("--freeze", action="store_true", help="with --compile: inductor freezing "
                   "(folds batch norm into the convolutions)")  # fmt: skip
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.pipeline_repo is not None and not (args.pipeline_repo / "dvc.lock").is_file():
        p.error(f"--pipeline_repo {args.pipeline_repo}: no dvc.lock (build it with both tools)")
    if args.arch is not None and args.arch not in lib.ARCHITECTURES:
        p.error(f"unknown architecture '{args.arch}'; valid: {', '.join(lib.ARCHITECTURES)}")
    args.precisions = args.precisions.split(",")
    if args.precisions[0] != "fp32" or not set(args.precisions) <= set(PRECISIONS):
        p.error(f"--precisions: fp32 first, then any of {', '.join(PRECISIONS)}")
    args.phases = args.phases.split(",")
    if not set(args.phases) <= set(PHASES) or len(set(args.phases)) < len(args.phases):
        p.error(f"--phases: a comma-separated choice of {', '.join(PHASES)}")
    if "fidelity" in args.phases and "certify" not in args.phases:
        p.error("--phases: fidelity compares the certify phase's counts; add certify")
    args.weights = args.weights or ("random" if args.quick else "synthetic")
    return args


def header(args: argparse.Namespace, s: dict, device: torch.device) -> dict:
    """Everything of the result JSON but the measurements: run, device, versions, settings."""
    return {
        "mode": args.mode, "quick": args.quick, "repeats": args.repeats, "phases": args.phases,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": lib.device_name(device), "sizes": s,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                     **lib.tool_versions()},
        "settings": {"cudnn_benchmark": torch.backends.cudnn.benchmark,
                     "tf32_in_statistics": False,  # robust.smoothing.ieee_fp32
                     "tf32_outside_statistics": {
                         "cudnn": torch.backends.cudnn.conv.fp32_precision,
                         "matmul": torch.backends.cuda.matmul.fp32_precision},
                     "sigma": SIGMA, "alpha": ALPHA, "seed": SEED, "compile": args.compile,
                     "inductor_freezing": args.freeze},
        "reference": {"resnet110_gflop_per_forward": 0.506, "h100_peak_bf16_tflops": 989,
                      "resnet110_h100_compute_bound_s_per_image": lib.RN110_H100_BOUND},
        "figures": {}, "phase_seconds": {}, "complete": False,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mode == "gpu" and not torch.cuda.is_available():
        print("error: --mode gpu needs a CUDA device", file=sys.stderr)
        return 2
    s = dict(SIZES["quick" if args.quick else args.mode], precisions=args.precisions)
    s["arch"] = args.arch or s["arch"]
    s["pool"] = max(s["images"], s["agree_images"])  # test images needed
    device = torch.device("cuda" if args.mode == "gpu" else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the pipeline's stages on cuda
    if args.freeze:
        from torch._inductor import config as inductor_config

        inductor_config.freezing = True
    started = time.perf_counter()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None  # other jobs skew CPU runs
    result = header(args, s, device)
    figures, phases = result["figures"], result["phase_seconds"]

    def save(complete: bool = False) -> None:
        """Write what is measured so far: a run stopped by a time limit keeps its finished parts."""
        result["goals"] = fidelity.goals(result)
        result["seconds_total"] = time.perf_counter() - started
        load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
        result["load_average_1_5_15min"] = {"start": load_start, "end": load_end}
        result["complete"] = complete
        write_json(args.out, result)

    def phase(name: str, fn, *fn_args):
        start = time.perf_counter()
        out = fn(*fn_args)
        phases[name] = time.perf_counter() - start
        return out

    model, pool, result["weights"] = phase("model", prepare, args, s, device)
    xs = pool[: s["images"]]  # timed; the fidelity checks look at the whole pool

    def save_certify(partial: dict) -> None:
        figures.update(partial)
        save()

    counts = {}
    if "certify" in args.phases:
        certify = (model, xs, s, device, args.repeats, args.compile, save_certify)
        counts = phase("certify", certify_speed.bench_certify, *certify)[1]
    if "pag" in args.phases:
        figures.update(phase("pag", lib.bench_pag, model, xs, s, device, args.repeats))
        save()
    if "train" in args.phases:
        figures.update(phase("train", lib.bench_train, s, device, args.repeats))
        save()
    if "pipeline" in args.phases:
        root, quick, built = ROOT, args.quick, args.pipeline_repo
        figures.update(phase("pipeline", lib.bench_pipeline, root, args.repeats, quick, built))
        save()
    if "fidelity" in args.phases:
        result["fidelity"] = phase("fidelity", fidelity.fidelity, model, pool, s, device, counts)
    save(complete=True)
    print(f"wrote {args.out} ({result['seconds_total']:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
