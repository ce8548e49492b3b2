"""benchmarks/bench.py: the quick CPU run writes every figure, check and goal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench.py"
FIGURES = {
    "certify_baseline_fp32", "certify_per_image_fp32", "certify_block_fp32", "certify_block_bf16",
    "pag_fp32", "pag_bf16",
    "train_tiny_cnn", "pipeline_snakemake_dry_run", "pipeline_dvc_status",
}  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "results-cpu.json"
    done = _run("--mode", "cpu", "--quick", "--repeats", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text())


def test_quick_run_writes_all_keys(quick):
    expected = {"mode", "quick", "repeats", "date", "device", "weights", "sizes", "versions",
                "settings", "reference", "figures", "fidelity", "goals", "phase_seconds",
                "seconds_total", "phases", "complete"}  # fmt: skip
    assert expected <= quick.keys() and quick["complete"] is True
    assert quick["mode"] == "cpu" and quick["quick"] is True
    assert {"python", "torch"} <= quick["versions"].keys()
    assert FIGURES <= quick["figures"].keys()
    for name, figure in quick["figures"].items():
        if name.startswith("pipeline_"):
            assert figure == {"skipped": "quick mode"}
            continue
        assert "error" not in figure, (name, figure)
        assert figure["min"] <= figure["median"] <= figure["max"] and figure["unit"]
        assert len(figure["values"]) == quick["repeats"]
    fast = quick["figures"]["certify_block_bf16"]
    assert fast["speedup_vs_baseline"] > 0 and fast["achieved_tflops"] > 0
    assert fast["speedup_vs_per_image"] > 0 and fast["images_per_call"] == fast["images"]
    assert quick["reference"]["resnet110_h100_compute_bound_s_per_image"] == pytest.approx(
        0.0512, abs=1e-3
    )
    assert quick["seconds_total"] < 60


def test_quick_run_fidelity_and_goals(quick):
    fidelity = quick["fidelity"]
    assert fidelity["batch_size_independence"]["identical"] is True
    assert fidelity["block_equals_per_image"] is True
    bf16 = fidelity["vs_fp32"]["block_bf16"]
    assert 0.9 <= bf16["argmax_agreement"] <= 1.0 and bf16["samples_compared"] > 0
    assert {"within_cp_width", "max_p_a_lower_diff", "per_image"} <= bf16["certify_counts"].keys()
    assert quick["settings"]["tf32_in_statistics"] is False
    goals = {row["goal"]: row for row in quick["goals"]}
    assert goals["certify fp32 exact (batch size, images per call)"]["pass"] is True
    reported = goals["block_bf16 argmax agreement with fp32 (reported)"]
    assert reported["value"] == bf16["argmax_agreement"] and reported["pass"] is None
    # Speed targets are for ResNet-110 on an H100: not judged on a quick CPU run.
    assert goals["certify block_bf16"]["pass"] is None and goals["certify block_bf16"]["note"]
    assert "certify block fp32 at least as fast as one image per call" in goals


def _import_bench():
    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench
    finally:
        sys.path.remove(str(BENCH.parent))
    return bench


def test_gpu_mode_without_cuda_and_bad_precisions(tmp_path, capsys):
    import torch

    bench = _import_bench()
    out = tmp_path / "x.json"
    if not torch.cuda.is_available():
        assert bench.main(["--mode", "gpu", "--out", str(out)]) == 2
        assert "needs a CUDA device" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--mode", "cpu", "--precisions", "bf16", "--out", str(out)])
    assert exit_info.value.code == 2 and "fp32 first" in capsys.readouterr().err
    assert not out.exists()


def test_a_stopped_run_keeps_its_finished_figures(tmp_path, monkeypatch):
    """A GPU call cut off by its time limit must not lose what it measured: the JSON is rewritten
    after every figure, marked incomplete until the end."""
    bench = _import_bench()

    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench.lib, "bench_pag", stop)
    out = tmp_path / "partial.json"
    argv = ["--mode", "cpu", "--quick", "--repeats", "1", "--precisions", "fp32",
            "--phases", "certify,pag", "--out", str(out)]  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        bench.main(argv)
    got = json.loads(out.read_text())
    assert got["complete"] is False and got["phases"] == ["certify", "pag"]
    assert set(got["figures"]) == {
        "certify_baseline_fp32", "certify_per_image_fp32", "certify_block_fp32"
    }  # fmt: skip
    assert got["figures"]["certify_block_fp32"]["median"] > 0 and "fidelity" not in got
    goals = {row["goal"]: row for row in got["goals"]}
    assert goals["PAG noisy gradient evaluations/s"]["value"] is None
    assert goals["certify block_fp32"]["value"]["s_per_image"] > 0
    exact = goals["certify fp32 exact (batch size, images per call)"]
    assert exact["value"] is None and exact["pass"] is None


def test_phases_run_alone_and_complete(tmp_path):
    out = tmp_path / "pag.json"
    bench = _import_bench()
    argv = ["--mode", "cpu", "--quick", "--repeats", "1", "--phases", "pag", "--out", str(out)]
    assert bench.main(argv) == 0
    got = json.loads(out.read_text())
    assert got["complete"] is True and set(got["phase_seconds"]) == {"model", "pag"}
    assert set(got["figures"]) == {"pag_fp32", "pag_bf16"}
    goals = {row["goal"]: row for row in got["goals"]}
    assert goals["PAG noisy gradient evaluations/s"]["value"] > 0


@pytest.mark.parametrize(
    ("phases", "message"),
    [("fidelity", "add certify"), ("certify,plots", "comma-separated choice"),
     ("pag,pag", "comma-separated choice")],
)  # fmt: skip
def test_bad_phases_are_refused_before_any_work(tmp_path, capsys, phases, message):
    out = tmp_path / "x.json"
    with pytest.raises(SystemExit) as exit_info:
        _import_bench().main(["--mode", "cpu", "--phases", phases, "--out", str(out)])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_dvc_reads_its_yaml_with_the_c_parser():
    """The Makefile installs ruamel.yaml < 0.19, which brings its C parser: without it DVC parses
    dvc.yaml and dvc.lock in pure Python and a no-op `dvc repro` is about 0.8 s slower."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import benchlib

    assert benchlib.tool_versions()["ruamel_c_parser"] is True
