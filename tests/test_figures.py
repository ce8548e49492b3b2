"""Tests for the figure scripts: layout, byte-identical PDF/PNG on reruns, one-line errors."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared hand-made result files
from test_tables import (  # noqa: E402
    COLUMNS,
    MODELS,
    RUNS,
    call,
    load_script,
    make_results,
    run_script,
)

PAG = ["--pag_dir", "results/pag"]
FIG1 = ["--columns", *COLUMNS, "--rows", "0", "1", "2", "--eps", "2.0", *PAG]
CERTIFIED = [
    "--runs", *RUNS, "--radii", "0.0", "0.25", "0.5", "--reference", "config/reference.tsv",
    "--certify_dir", "results/certify",
]  # fmt: skip
TRAINING = ["--models", *MODELS, "--train_dir", "results/train"]


DPI = 100  # PNG resolution in these tests (the pipeline's is report.PNG_DPI); keeps them fast


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_results(tmp_path_factory.mktemp("figures"))


@pytest.fixture(autouse=True)
def low_dpi(monkeypatch: pytest.MonkeyPatch) -> None:
    from robust import report

    monkeypatch.setattr(report, "PNG_DPI", DPI)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def outputs(root: Path, stem: str) -> tuple[bytes, bytes]:
    pdf, png = root / f"{stem}.pdf", root / f"{stem}.png"
    return pdf.read_bytes(), png.read_bytes()


def test_fig1_layout_and_identical_bytes(results: Path, capsys) -> None:
    for out in ("a/fig1", "b/fig1"):
        code, err = call("fig_pag.py", [*FIG1, "--out", out], results, capsys)
        assert code == 0, err
    pdf, png = outputs(results / "a", "fig1")
    assert (pdf, png) == outputs(results / "b", "fig1")
    assert pdf.startswith(b"%PDF") and b"CreationDate" not in pdf
    # cells of 1 in: 3 rows x (Original + 4 columns), gaps and margins (the left one fits the row
    # labels): 4.0 in high, about 6 wide
    width, height = png_size(results / "a/fig1.png")
    assert height == 400 and 550 < width < 650
    assert sorted(p.name for p in (results / "a").iterdir()) == ["fig1.pdf", "fig1.png"]


def test_eps_sweep_layout(results: Path, capsys) -> None:
    args = ["--columns", *COLUMNS, "--rows", "0", "2", "--eps", "all", *PAG]
    code, err = call("fig_pag.py", [*args, "--out", "sweep/fig"], results, capsys)
    assert code == 0, err
    # 2 blocks x 4 rows, Original + 2 eps: 10.32 in high, about 4.4 wide
    width, height = png_size(results / "sweep/fig.png")
    assert height == 1032 and 380 < width < 480


def test_certified_identical_bytes_across_processes(results: Path, capsys) -> None:
    code, err = call("fig_certified.py", [*CERTIFIED, "--out", "c1/fig"], results, capsys)
    assert code == 0, err
    args = [*CERTIFIED, "--out", "c2/fig", "--log", "logs/fig.log"]  # as the pipeline calls it
    proc = run_script("fig_certified.py", args, results)
    assert proc.returncode == 0, proc.stderr
    assert "command:" in (results / "logs/fig.log").read_text(encoding="utf-8")
    # the PDF only: the fresh interpreter writes its PNG at the pipeline's resolution
    assert outputs(results / "c1", "fig")[0] == outputs(results / "c2", "fig")[0]


def test_certified_train_sigma_legend(results: Path, capsys) -> None:
    args = [*CERTIFIED, "--legend", "train_sigma", "--out", "c3/fig"]
    code, err = call("fig_certified.py", args, results, capsys)
    assert code == 0, err
    assert outputs(results / "c3", "fig")[0] != outputs(results / "c1", "fig")[0]  # other labels


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_legends_never_cover_data(results: Path) -> None:
    """The certified-accuracy legend sits beside its axes, the training-curve legend above every
    panel: neither overlaps a plotting area, whatever the curves do."""
    from robust import report
    from robust import results as records

    plt = report.use_style()
    certified = load_script("fig_certified")
    reference = records.read_reference(results / "config/reference.tsv")
    runs = [records.load_certify_run(results / "results/certify", r, reference) for r in RUNS]
    fig = certified.draw(plt, runs, [0.0, 0.25, 0.5], "sigma")
    fig.canvas.draw()
    (ax,) = fig.axes
    assert not _overlaps(ax.get_legend().get_window_extent(), ax.get_window_extent())
    plt.close(fig)
    training = load_script("fig_training")
    fig = training.draw(plt, MODELS, [training.load_model(results / "results/train", m)
                                      for m in MODELS])  # fmt: skip
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert not any(_overlaps(legend, a.get_window_extent()) for a in fig.axes if a.get_visible())
    plt.close(fig)


@pytest.mark.parametrize("label", ["x", r"a long diagonal stripes $\to$ vertical bars"])
def test_row_labels_fit_inside_the_figure(label: str) -> None:
    """The left margin of a PAG figure grows with its widest row label: no label is cut."""
    import torch
    from matplotlib.text import Text

    from robust import report

    plt = report.use_style()
    cell = (torch.rand(3, 8, 8), "$p_t$ = 1.00")
    fig = load_script("fig_pag").draw(plt, [[cell, cell]], [label], [["a", "b"]])
    fig.canvas.draw()
    box = fig.bbox
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text():
            extent = text.get_window_extent()
            assert box.x0 <= extent.x0 and extent.x1 <= box.x1, text.get_text()
    plt.close(fig)


def test_training_identical_bytes(results: Path, capsys) -> None:
    args = ["--models", "g025", "--train_dir", "results/train"]
    for out in ("t1/fig", "t2/fig"):
        code, err = call("fig_training.py", [*args, "--out", out], results, capsys)
        assert code == 0, err
    assert outputs(results / "t1", "fig") == outputs(results / "t2", "fig")


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("fig_pag.py", ["--columns", "std", "nope", "--rows", "0", "--eps", "2", *PAG],
         "missing PAG result results/pag/nope.pt"),
        ("fig_pag.py", ["--columns", "std", "--rows", "0", "--eps", "4", *PAG],
         "eps 4 not in results/pag/std.pt (has 1, 2)"),
        ("fig_pag.py", ["--columns", "std", "--rows", "3", "--eps", "2", *PAG],
         "row 3 out of range: the results have 3 pairs"),
        ("fig_pag.py", ["--columns", "std", "--rows", "0", "--eps", "most", *PAG],
         "--eps: a generation radius or all, got most"),
        ("fig_certified.py", ["--runs", "g025", "nope", *CERTIFIED[4:]],
         "missing result file results/certify/nope.json"),
        ("fig_certified.py", [*CERTIFIED[:-1], "missing"],
         "missing result file missing/g025.json"),
        ("fig_training.py", ["--models", "std", "nope", "--train_dir", "results/train"],
         "missing result file results/train/nope.json"),
    ],
)  # fmt: skip
def test_bad_input_one_line_exit_2_no_output(results: Path, capsys, name, args, message) -> None:
    code, err = call(name, [*args, "--out", "bad/fig"], results, capsys)
    assert (code, err) == (2, f"error: {message}\n")
    assert not (results / "bad").exists()


def test_corrupt_pag_file(tmp_path: Path, capsys) -> None:
    root = make_results(tmp_path)
    (root / "results/pag/std.pt").write_bytes(b"not a torch file")
    code, err = call("fig_pag.py", [*FIG1, "--out", "bad/fig"], root, capsys)
    assert code == 2 and err.startswith("error: cannot read PAG result results/pag/std.pt")
    assert err.count("\n") == 1 and not (root / "bad").exists()


def test_bad_flag_value_is_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        load_script("fig_pag.py").main(["--columns", "std", "--rows", "zero", "--eps", "2"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ")
