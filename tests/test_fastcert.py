"""robust.fastcert: many-image CERTIFY that reproduces Smooth.certify exactly in float32."""

from __future__ import annotations

import math
import weakref

import pytest
import torch
from torch import nn

from robust import fastcert
from robust.archs.tiny import TinyCNN
from robust.fastcert import certify_many, noisy_batches, sample_counts_many
from robust.models import Normalize
from robust.smoothing import Smooth

K, SIGMA, CHUNK, SEED = 10, 0.25, 100, 3
N0, N, ALPHA = 30, 450, 0.001
STREAMS = (("selection", N0), ("estimation", N))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(Normalize((0.5,) * 3, (0.25,) * 3), TinyCNN(K))
    return net.eval()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, list[int]]:
    xs = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    return xs, [0, 7, 40]


class Recorder(nn.Module):
    """Constant logits; keeps every input row it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return torch.zeros(x.shape[0], K)


def test_noise_is_bitwise_that_of_smooth(images):
    xs, idxs = images
    recorder = Recorder()
    smooth = Smooth(recorder, K, SIGMA, chunk_size=CHUNK, seed=SEED)
    for i, idx in enumerate(idxs):
        for stream, num in STREAMS:
            smooth.sample_counts(xs[i], num, 64, idx, stream)
    expected = torch.cat(recorder.seen)
    got = [
        b[:filled].clone()
        for b, _, filled in noisy_batches(xs, idxs, SIGMA, STREAMS, 170, CHUNK, SEED)
    ]
    assert torch.equal(torch.cat(got), expected)


@pytest.mark.parametrize("batch_size", [64, 257, 1400])
def test_fp32_equals_smooth_certify(model, images, batch_size):
    xs, idxs = images
    smooth = Smooth(model, K, SIGMA, chunk_size=CHUNK, seed=SEED)
    expected = [smooth.certify(xs[i], N0, N, ALPHA, 200, idx=idx) for i, idx in enumerate(idxs)]
    got = certify_many(model, xs, idxs, K, SIGMA, N0, N, ALPHA, batch_size, CHUNK, SEED)
    assert got == expected
    assert any(p != -1 for p, _ in got)  # not a degenerate all-abstain case


def test_counts_independent_of_batch_size_and_blocks(model, images):
    xs, idxs = images
    reference = sample_counts_many(model, xs, idxs, K, SIGMA, STREAMS, 1000, CHUNK, SEED)
    assert reference.shape == (3, 2, K)
    assert reference.sum(dim=2).tolist() == [[N0, N]] * 3
    for batch_size, block in ((33, None), (512, 1), (90, 2)):
        counts = sample_counts_many(
            model, xs, idxs, K, SIGMA, STREAMS, batch_size, CHUNK, SEED, images_per_block=block
        )
        assert torch.equal(counts, reference)


def test_bf16_agrees_with_fp32(model, images):
    xs, idxs = images
    agree = total = 0
    with torch.no_grad():
        for batch, _, filled in noisy_batches(xs, idxs, SIGMA, STREAMS, 500, CHUNK, SEED):
            fp32 = model(batch[:filled]).argmax(1)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                bf16 = model(batch[:filled]).argmax(1)
            agree, total = agree + int((fp32 == bf16).sum()), total + filled
    assert total == 3 * (N0 + N)
    assert agree / total >= 0.99
    answers = certify_many(model, xs, idxs, K, SIGMA, N0, N, ALPHA, 300, CHUNK, SEED, "bf16")
    assert len(answers) == 3 and all(r >= 0 for _, r in answers)


@pytest.mark.parametrize(("precision", "tie_margin"), [("fp32", 0.0), ("bf16", 0.005)])
def test_compiled_path_has_static_shapes(model, images, monkeypatch, precision, tie_margin):
    """With a compile hook every batch, the padded last one included, has one shape, also with
    the tie recheck (its padded rows must not count as near ties: same answers as eager)."""
    xs, idxs = images
    shapes = set()

    def fake_compile(fn, dynamic, mode):
        assert dynamic is False

        def wrapped(batch, valid):
            shapes.add(tuple(batch.shape))
            return fn(batch, valid)

        return wrapped

    def run(**kw) -> list:
        return certify_many(model, xs, idxs, K, SIGMA, N0, N, ALPHA, 400, CHUNK, SEED, precision,
                            tie_margin=tie_margin, **kw)  # fmt: skip

    monkeypatch.setattr(fastcert.torch, "compile", fake_compile)
    monkeypatch.setattr(fastcert, "_COMPILED", weakref.WeakKeyDictionary())
    got = run(compile_mode="default")
    assert shapes == {(400, 3, 16, 16)}
    monkeypatch.undo()
    assert got == run()


def test_channels_last_runs(images):
    xs, idxs = images
    torch.manual_seed(0)
    net = nn.Sequential(Normalize((0.5,) * 3, (0.25,) * 3), TinyCNN(K)).eval()
    answers = certify_many(
        net, xs, idxs, K, SIGMA, N0, N, ALPHA, 256, CHUNK, SEED, channels_last=True
    )
    assert len(answers) == 3


def tie_reference(model, xs, idxs, tie_margin: float) -> tuple[torch.Tensor, fastcert.TieStats]:
    """Counts [B, 2, K] of the defined classifier, written out directly: the fp32 label where the
    bf16 top-2 margin is below tie_margin, the bf16 label elsewhere (both labels of every sample
    from full passes; per-sample outputs do not depend on the batch on the CPU); and its tie
    statistics."""
    counts = torch.zeros(len(idxs) * 2 * K, dtype=torch.int64)
    stats = fastcert.TieStats(samples=len(idxs) * (N0 + N))
    with torch.no_grad():
        for batch, segment, filled in noisy_batches(xs, idxs, SIGMA, STREAMS, 500, CHUNK, SEED):
            batch, segment = batch[:filled], segment[:filled]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = model(batch).float()
            top2 = low.topk(2, dim=1).values
            near = top2[:, 0] - top2[:, 1] < tie_margin
            fp32 = model(batch).argmax(1)
            labels = torch.where(near, fp32, low.argmax(1))
            counts.index_add_(0, segment * K + labels, torch.ones_like(labels))
            stats.near_ties += int(near.sum())
            stats.changed += int((near & (fp32 != low.argmax(1))).sum())
    return counts.view(len(idxs), 2, K), stats


def test_tie_margin_brings_back_the_fp32_labels(model, images):
    xs, idxs = images
    fp32 = sample_counts_many(model, xs, idxs, K, SIGMA, STREAMS, 500, CHUNK, SEED)
    bf16 = sample_counts_many(model, xs, idxs, K, SIGMA, STREAMS, 500, CHUNK, SEED, "bf16")
    assert not torch.equal(bf16, fp32)  # bf16 flips some labels of this model
    for tie_margin in (0.005, math.inf):  # this model's bf16 flips all have margins below 0.002
        rechecked = sample_counts_many(
            model, xs, idxs, K, SIGMA, STREAMS, 500, CHUNK, SEED, "bf16", tie_margin=tie_margin
        )
        assert torch.equal(rechecked, fp32)


@pytest.fixture(scope="module")
def tie_expected(model, images) -> tuple[torch.Tensor, fastcert.TieStats]:
    expected, stats = tie_reference(model, *images, 0.005)
    assert not torch.equal(expected, tie_reference(model, *images, 0.0)[0])  # the margin matters
    assert 0 < stats.changed < stats.near_ties < stats.samples
    return expected, stats


@pytest.mark.parametrize("share", [1 / 500, 1 / 16, 1.0])
def test_tie_recheck_is_one_fixed_classifier(model, images, tie_expected, monkeypatch, share):
    """Counts and tie statistics equal the per-sample definition for any batch size, block and
    recheck share (the smallest share overflows and takes the after-block fallback)."""
    xs, idxs = images
    expected, expected_stats = tie_expected
    monkeypatch.setattr(fastcert, "RECHECK_SHARE", share)
    for batch_size, block in ((500, None), (64, 1), (257, 2)):
        stats = fastcert.TieStats()
        counts = sample_counts_many(
            model, xs, idxs, K, SIGMA, STREAMS, batch_size, CHUNK, SEED, "bf16",
            images_per_block=block, tie_margin=0.005, stats=stats,
        )  # fmt: skip
        assert torch.equal(counts, expected), (share, batch_size, block)
        assert stats == expected_stats, (share, batch_size, block)


def test_after_block_pass_forwards_only_the_missed_near_ties(model, images, monkeypatch):
    """With one recheck row per batch, each batch's pass relabels one near tie; the after-block
    pass must forward the other near ties only (not those relabelled already)."""
    xs, idxs = images
    monkeypatch.setattr(fastcert, "RECHECK_SHARE", 1 / 500)
    near_per_batch = []
    with torch.no_grad():
        for batch, _, filled in noisy_batches(xs, idxs, SIGMA, STREAMS, 500, CHUNK, SEED):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                top2 = model(batch[:filled]).float().topk(2, dim=1).values
            near_per_batch.append(int((top2[:, 0] - top2[:, 1] < 0.005).sum()))
    rows = []
    hook = model.register_forward_pre_hook(lambda module, args: rows.append(len(args[0])))
    try:
        sample_counts_many(model, xs, idxs, K, SIGMA, STREAMS, 500, CHUNK, SEED, "bf16",
                           tie_margin=0.005)  # fmt: skip
    finally:
        hook.remove()
    batches = len(near_per_batch)
    missed = sum(near - min(near, 1) for near in near_per_batch)
    assert missed > 0  # the after-block pass runs
    # shape check (1 row), the batches' passes (every sample once), their recheck rows, the rest
    assert sum(rows) == 1 + len(idxs) * (N0 + N) + batches + missed


def test_tie_stats_add_up_and_stay_empty_without_a_margin(model, images):
    xs, idxs = images
    stats = fastcert.TieStats()
    for precision, tie_margin in (("fp32", 0.005), ("bf16", 0.0)):
        sample_counts_many(model, xs, idxs, K, SIGMA, STREAMS, 500, CHUNK, SEED, precision,
                           tie_margin=tie_margin, stats=stats)  # fmt: skip
    assert stats == fastcert.TieStats()  # nothing was relabelled
    for _ in range(2):  # summed over calls
        sample_counts_many(model, xs, idxs, K, SIGMA, STREAMS, 500, CHUNK, SEED, "bf16",
                           tie_margin=math.inf, stats=stats)  # fmt: skip
    assert stats.samples == stats.near_ties == 2 * 3 * (N0 + N) and stats.changed > 0


@pytest.mark.parametrize(
    "kwargs",
    [{"precision": "int8"}, {"batch_size": 0}, {"sigma": 0.0}, {"idxs": [0, 1]},
     {"tie_margin": -0.1}, {"tie_margin": math.nan}],
)  # fmt: skip
def test_bad_arguments(model, images, kwargs):
    xs, idxs = images
    args = {"idxs": idxs, "sigma": SIGMA, "batch_size": 100, "precision": "bf16"}
    args |= {"tie_margin": 0.0} | kwargs
    with pytest.raises(ValueError):
        certify_many(
            model, xs, args["idxs"], K, args["sigma"], N0, N, ALPHA, args["batch_size"], CHUNK,
            SEED, args["precision"], tie_margin=args["tie_margin"],
        )  # fmt: skip
