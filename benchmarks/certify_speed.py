"""CERTIFY speed figures of benchmarks/bench.py: Cohen et al.'s straightforward loop (the
baseline, written for the benchmark) against ``robust.fastcert`` in each precision, tie and compile
variant, on the same device in the same run."""

from __future__ import annotations

import copy
import math
import time
from statistics import median

import benchlib as lib
import numpy as np
import torch

from robust import fastcert
from robust.precision import ieee_fp32
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
        c_a = int(cohen_counts(model, x, s["n0"], s["base_batch"], generator).argmax())
        n_a = int(cohen_counts(model, x, s["n"], s["base_batch"], generator)[c_a])
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


def bench_certify(model, xs, s: dict, device, repeats: int, compile_mode: str | None, save=None):
    """s/image of the baseline loop and of the certify_many variants; returns (figures, counts).
    ``save(figures)``, if given, is called after each figure (partial results survive a stop)."""
    save = save or (lambda figures: None)
    gpu = device.type == "cuda"
    fast_model = copy.deepcopy(model).to(memory_format=torch.channels_last) if gpu else model
    low = [p for p in s["precisions"] if p != "fp32"]
    variants = {p: (p, None, 0.0) for p in s["precisions"]}
    if s["tie_margin"] > 0:
        variants.update({f"{p}_tie": (p, None, s["tie_margin"]) for p in low})
    if compile_mode:
        eager = [(name, p, tie) for name, (p, _, tie) in variants.items() if p != "fp32"]
        variants.update({f"{name}_compiled": (p, compile_mode, tie) for name, p, tie in eager})
    base = xs[: s["base_images"]]
    cohen_certify(model, base[:1], s)  # warm-up
    times, _ = lib.repeat(lambda: cohen_certify(model, base, s), repeats, device)
    baseline = lib.spread([t / len(base) for t in times], "s/image", images=len(base),
                          batch=s["base_batch"])  # fmt: skip
    figures, counts = {"certify_baseline_fp32": baseline}, {}
    save(figures)
    work = forward_flops(model, xs) * (s["n"] + s["n0"])  # FLOPs per certified image
    peak = next((v for k, v in lib.PEAK_BF16.items() if k in lib.device_name(device)), None)
    for name, (precision, mode, tie_margin) in variants.items():
        kw = dict(precision=precision, channels_last=gpu, compile_mode=mode, tie_margin=tie_margin)
        start = time.perf_counter()
        try:  # warm-up; compiles if mode is set
            lib.fast_counts(fast_model, xs[:1], s, s["batch"], **kw)
        except Exception as err:  # an optional compiler failing must not lose the other figures
            figures[f"certify_fast_{name}"] = {"error": f"{type(err).__name__}: {err}"[:500]}
            save(figures)
            continue
        warm = time.perf_counter() - start
        kw["stats"] = ties = fastcert.TieStats()  # summed over the timed runs (same samples)
        times, counts[name] = lib.repeat(
            lambda kw=kw: lib.fast_counts(fast_model, xs, s, s["batch"], **kw), repeats, device
        )
        per_image = [t / len(xs) for t in times]
        figure = lib.spread(
            per_image, "s/image", images=len(xs), batch=s["batch"], channels_last=gpu,
            compile=mode, warmup_seconds=warm, achieved_tflops=work / median(per_image) / 1e12,
            speedup_vs_baseline=baseline["median"] / median(per_image),
        )  # fmt: skip
        if ties.samples:  # what the relabelling cost and changed in these very runs
            figure["near_tie_share"] = ties.near_ties / ties.samples
            figure["changed_label_share"] = ties.changed / ties.samples
        if peak:
            figure["compute_bound_s_per_image"] = work / peak
            figure["ratio_to_compute_bound"] = median(per_image) * peak / work
        figures[f"certify_fast_{name}"] = figure
        save(figures)
    return figures, counts
