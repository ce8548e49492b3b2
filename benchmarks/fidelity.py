"""Fidelity checks and the goals table of benchmarks/bench.py.

A bf16 forward pass is a different (fixed) base classifier: its counts are exact binomial samples,
so its certificate holds for the bf16 network. These checks report how far its answers are from
fp32's; they do not hold it to them. fp32 itself must not depend on the batch size or on how images
are grouped into calls.
"""

from __future__ import annotations

import torch
from benchlib import ALPHA, SEED, SIGMA, K, block_counts
from torch import Tensor

from robust.smoothing import ieee_fp32, noisy_batches
from robust.stats import clopper_pearson_lower


def argmax_agreement(model, xs, s: dict, device, precision: str) -> dict:
    """Share of noisy samples (the first s["agree"] estimation samples of every image, the same
    inputs for both) whose fp32 and low-precision labels agree, and the low-precision top-2
    margins of those that flip."""
    agree, total, flip_margins = 0, 0, []
    streams = (("estimation", s["agree"]),)
    with torch.no_grad(), ieee_fp32():
        for batch, _ in noisy_batches(xs, range(len(xs)), streams, SIGMA, s["batch"], s["chunk"],
                                      SEED):  # fmt: skip
            fp32 = model(batch).argmax(1)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(batch).float()
            top2 = logits.topk(2, dim=1).values
            agree, total = agree + int((fp32 == logits.argmax(1)).sum()), total + len(batch)
            flip_margins += (top2[:, 0] - top2[:, 1])[fp32 != logits.argmax(1)].tolist()
    return {"argmax_agreement": agree / total, "samples_compared": total,
            "max_flip_margin": max(flip_margins, default=None)}  # fmt: skip


def compare_counts(ref: Tensor, other: Tensor, n: int) -> dict:
    """p_a_lower per image under two count tables [B, 2, K] (selection, estimation) of the same
    noise: the same guess, and a move within the fp32 one-sided Clopper-Pearson width?"""
    rows = []
    for a, b in zip(ref.tolist(), other.tolist(), strict=True):
        c_a, c_b = (max(range(K), key=c[0].__getitem__) for c in (a, b))
        p_ref, p_same = (clopper_pearson_lower(c[1][c_a], n, ALPHA) for c in (a, b))
        rows.append({"same_c_a": c_a == c_b, "p_a_lower_fp32": p_ref,
                     "p_a_lower": clopper_pearson_lower(b[1][c_b], n, ALPHA),
                     "abs_diff": abs(p_ref - p_same),
                     "cp_width": a[1][c_a] / n - p_ref})  # fmt: skip
    return {
        "n": n, "images": len(rows),
        "same_prediction": sum(r["same_c_a"] for r in rows) / len(rows),
        "max_p_a_lower_diff": max(r["abs_diff"] for r in rows),
        "within_cp_width": all(r["same_c_a"] and r["abs_diff"] <= r["cp_width"] for r in rows),
        "per_image": rows,
    }  # fmt: skip


def fidelity(model, xs, s: dict, device, counts: dict[str, Tensor]) -> dict:
    """Low precision against fp32 (reported), and fp32's independence of batch size and grouping."""
    images, other = s["bs_check"]
    ref = block_counts(model, xs[:images], s)
    alt = block_counts(model, xs[:images], s, block=1, batch=other)
    versus = {}
    for name, table in counts.items():
        if "fp32" in name or "block_fp32" not in counts:
            continue
        precision = name.removeprefix("block_").removesuffix("_compiled")
        versus[name] = {"certify_counts": compare_counts(counts["block_fp32"], table, s["n"])}
        versus[name] |= argmax_agreement(model, xs[: s["agree_images"]], s, device, precision)
    exact = [torch.equal(counts[k], counts["block_fp32"]) for k in counts if "fp32" in k]
    return {
        "vs_fp32": versus,
        "batch_size_independence": {
            "images": images, "batch_sizes": [s["batch"], other],
            "identical": torch.equal(ref, alt),
            "max_abs_count_diff": int((ref - alt).abs().max()),
        },
        "block_equals_per_image": all(exact) if exact else None,
    }  # fmt: skip


def goals(result: dict) -> list[dict]:
    """The targets with measured value and pass (None: this run is not the target setup, or the
    figure was not measured, or the row only reports). fp32 speed counts only if fp32 is exact."""
    f, fid = result["figures"], result.get("fidelity")
    sizes = result["sizes"]
    real = result["mode"] == "gpu" and "H100" in result["device"] and not result["quick"]
    real = real and sizes["arch"] == "cifar_resnet110" and sizes["n"] == 100_000
    note = None if real else "target is for ResNet-110, n=100,000 on an H100; not this run"
    exact = None
    if fid is not None:
        exact = fid["batch_size_independence"]["identical"] and fid["block_equals_per_image"]
    rows = []
    for key, fig in f.items():
        if key.startswith("certify_block_") and "median" in fig:
            value = {"s_per_image": fig["median"], "speedup": fig["speedup_vs_baseline"]}
            ok = fig["median"] <= 0.25 and fig["speedup_vs_baseline"] >= 20
            rows.append((f"certify {key.removeprefix('certify_')}", "<= 0.25 s/image, >= 20x",
                         value, ok, True))  # fmt: skip
    block, single = f.get("certify_block_fp32", {}), f.get("certify_per_image_fp32", {})
    if "median" in block and "median" in single:
        speedup = block["speedup_vs_per_image"]
        rows.append(("certify block fp32 at least as fast as one image per call", ">= 1x",
                     speedup, speedup >= 1, False))  # fmt: skip
    for name, entry in (fid or {}).get("vs_fp32", {}).items():
        rows.append((f"{name} argmax agreement with fp32 (reported)", "reported",
                     entry["argmax_agreement"], None, False))  # fmt: skip
    pag = [f[k]["median"] for k in ("pag_fp32", "pag_bf16") if "median" in f.get(k, {})]
    pag = max(pag, default=None)
    rows.append(("PAG noisy gradient evaluations/s", ">= 150000", pag,
                 None if pag is None else pag >= 150_000, True))  # fmt: skip
    # true no-ops (a built copy) when measured, else the dry run and status of the repository
    noop = [v["median"] for k, v in f.items() if k.endswith("_noop") and "median" in v] or [
        v["median"] for k, v in f.items() if k.startswith("pipeline_") and "median" in v
    ]
    rows.append(("pipeline no-op seconds (max of medians)", "<= 1.5", max(noop, default=None),
                 max(noop) <= 1.5 if noop else None, False))  # fmt: skip
    rows.append(("certify fp32 exact (batch size, images per call)", "true", exact, exact, False))
    return [{"goal": g, "target": t, "value": v,
             "pass": None if ok is None or (gpu_only and not real) else bool(ok),
             "note": note if gpu_only else None} for g, t, v, ok, gpu_only in rows]  # fmt: skip
