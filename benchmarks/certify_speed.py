"""CERTIFY speed figures of benchmarks/bench.py, same device, same run: Cohen et al.'s
straightforward loop (the baseline, written for the benchmark), ``Smooth.certify`` one image per
call (the pipeline's per-image path) and ``Smooth.certify`` on a block of images, in each precision
and, with --compile, under ``torch.compile``."""

from __future__ import annotations

import copy
import math
import time
from statistics import median

import benchlib as lib
import numpy as np
import torch

from robust.smoothing import ieee_fp32
from robust.stats import clopper_pearson_lower, norm_ppf

K, SIGMA, ALPHA, SEED = lib.K, lib.SIGMA, lib.ALPHA, lib.SEED


def cohen_counts(model, x, num: int, batch: int, generator) -> np.ndarray:
    """The straightforward loop of Cohen et al.'s code: repeat x, draw fp32 noise, forward (IEEE
    float32, as on the GPUs of 2019), then copy the labels to the host and count them there: one
    host sync per batch."""
    counts = np.zeros(K, dtype=np.int64)
    with torch.no_grad(), ieee_fp32():
        for start in range(0, num, batch):
            copies = x.unsqueeze(0).repeat(min(batch, num - start), 1, 1, 1)
            noise = torch.randn(copies.shape, generator=generator, device=x.device) * SIGMA
            labels = model(copies + noise).argmax(1)
            counts += np.bincount(labels.cpu().numpy(), minlength=K)
    return counts


def cohen_certify(model, xs, s: dict) -> list[tuple[int, float]]:
    """CERTIFY image by image with :func:`cohen_counts` (the speed baseline)."""
    generator = torch.Generator(xs.device).manual_seed(SEED)
    answers = []
    for x in xs:
        c_a = int(cohen_counts(model, x, s["n0"], s["batch"], generator).argmax())
        n_a = int(cohen_counts(model, x, s["n"], s["batch"], generator)[c_a])
        p_a = clopper_pearson_lower(n_a, s["n"], ALPHA)
        answers.append((-1, 0.0) if p_a < 0.5 else (c_a, SIGMA * norm_ppf(p_a)))
    return answers


def forward_flops(model, xs) -> float:
    """FLOPs (2 x multiply-adds of the convolutions and linear layers) of one forward pass of one
    image. Counted with hooks: torch's FlopCounterMode would import the compiler stack (seconds)."""
    total = 0.0

    def count(module, inputs, output) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
            total += 2.0 * output.numel() * per_output
        elif isinstance(module, torch.nn.Linear):
            total += 2.0 * output.numel() * module.in_features

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    handles = [m.register_forward_hook(count) for m in layers]
    try:
        with torch.no_grad():
            model(xs[:1])
    finally:
        for handle in handles:
            handle.remove()
    return total


def variants(model, s: dict, device, compile_mode: str | None) -> dict:
    """name -> (network, precision, images per call): the per-image path in fp32, the block path
    in every precision, and compiled block paths; NHWC networks on GPUs, as the fast config."""
    net = (
        copy.deepcopy(model).to(memory_format=torch.channels_last)
        if device.type == "cuda"
        else model
    )
    out = {"per_image_fp32": (net, "fp32", 1)}
    out |= {f"block_{p}": (net, p, None) for p in s["precisions"]}
    if compile_mode:
        mode = None if compile_mode == "default" else compile_mode
        compiled = torch.compile(copy.deepcopy(net), mode=mode)
        out |= {f"block_{p}_compiled": (compiled, p, None) for p in s["precisions"]}
    return out


def bench_certify(model, xs, s: dict, device, repeats: int, compile_mode: str | None, save=None):
    """s/image of the baseline loop and of each ``Smooth.certify`` variant; returns (figures, their
    counts [B, 2, K] per variant). ``save(figures)``, if given, is called after each figure
    (partial results survive a stop)."""
    save = save or (lambda figures: None)
    base = xs[: s["base_images"]]
    cohen_certify(model, base[:1], s)  # warm-up
    times, _ = lib.repeat(lambda: cohen_certify(model, base, s), repeats, device)
    baseline = lib.spread([t / len(base) for t in times], "s/image", images=len(base),
                          batch=s["batch"])  # fmt: skip
    figures, counts = {"certify_baseline_fp32": baseline}, {}
    save(figures)
    work = forward_flops(model, xs) * (s["n"] + s["n0"])  # FLOPs per certified image
    peak = next((v for k, v in lib.PEAK_BF16.items() if k in lib.device_name(device)), None)
    for name, (net, precision, block) in variants(model, s, device, compile_mode).items():
        run = lambda net=net, p=precision, b=block: lib.block_counts(net, xs, s, p, b)  # noqa: E731
        start = time.perf_counter()
        try:  # warm-up; compiles if asked
            lib.block_counts(net, xs[:1], s, precision, block)
        except Exception as err:  # an optional compiler failing must not lose the other figures
            figures[f"certify_{name}"] = {"error": f"{type(err).__name__}: {err}"[:500]}
            save(figures)
            continue
        warm = time.perf_counter() - start
        times, counts[name] = lib.repeat(run, repeats, device)
        per_image = [t / len(xs) for t in times]
        figure = lib.spread(
            per_image, "s/image", images=len(xs), images_per_call=block or len(xs),
            batch=s["batch"], warmup_seconds=warm,
            achieved_tflops=work / median(per_image) / 1e12,
            speedup_vs_baseline=baseline["median"] / median(per_image),
        )  # fmt: skip
        if "certify_per_image_fp32" in figures:
            per_image_median = figures["certify_per_image_fp32"]["median"]
            figure["speedup_vs_per_image"] = per_image_median / median(per_image)
        if peak:
            figure["compute_bound_s_per_image"] = work / peak
            figure["ratio_to_compute_bound"] = median(per_image) * peak / work
        figures[f"certify_{name}"] = figure
        save(figures)
    return figures, counts
