"""Tests for robust.report, robust.latex (formatting, tables, macro names), robust.results
(readers) and scripts/build_paper.py."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from robust import latex, metrics, report, results

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared hand-made result files
from test_tables import (  # noqa: E402
    ROOT,
    call,
    load_script,
    make_results,
    numbers_args,
    tables_args,
)

FIGURES = ("fig1", "sigma_sweep", "eps_sweep", "certified_accuracy", "training_curves")
needs_latexmk = pytest.mark.skipif(
    not report.latex_available(), reason="latexmk not installed (apt-get install latexmk ...)"
)


def test_number_formats() -> None:
    assert [latex.format_float(x) for x in (0.25, 8.0, 0.001, 0.0, -0.0, 100000)] == [
        "0.25", "8", "0.001", "0", "0", "100000",
    ]  # fmt: skip
    assert latex.format_fraction(0.594) == "0.59" and latex.format_fraction(None) == "--"
    assert latex.format_percent(0.9083) == "90.8" and latex.format_percent(None) == "--"
    signed = [latex.format_signed(x) for x in (0.1, -0.3, 0.004, -0.004, None)]
    assert signed == ["$+0.10$", "$-0.30$", "$0.00$", "$0.00$", "--"]
    assert latex.format_int(100000) == "100{,}000" and latex.format_int(100) == "100"
    assert [latex.join_words(w) for w in ([], ["a"], ["a", "b"], ["a", "b", "c"])] == [
        "n/a", "a", "a and b", "a, b and c",
    ]  # fmt: skip
    assert latex.tex_escape("cifar_resnet110 & 5%") == r"cifar\_resnet110 \& 5\%"


def test_bold_max_marks_every_displayed_maximum() -> None:
    assert latex.bold_max(["0.50", "0.75", "--", "0.75"]) == [
        "0.50", r"\textbf{0.75}", "--", r"\textbf{0.75}",
    ]  # fmt: skip
    assert latex.bold_max(["--", "--"]) == ["--", "--"]


def test_newcommand_takes_letter_only_names() -> None:
    assert latex.newcommand(r"\PagM", "32") == r"\newcommand{\PagM}{32}"
    with pytest.raises(report.ReportError, match="letters only"):
        latex.newcommand(r"\Pag2", "32")


def test_tabular_is_a_complete_booktabs_environment() -> None:
    text = latex.tabular("lc", [latex.table_row(["a", "b"])], [latex.table_row(["x", "1"])])
    assert text == (
        "\\begin{tabular}{lc}\n\\toprule\na & b \\\\\n\\midrule\nx & 1 \\\\\n"
        "\\bottomrule\n\\end{tabular}\n"
    )


def test_readers(tmp_path: Path) -> None:
    root = make_results(tmp_path)
    radius, correct = results.read_certify(root / "results/certify/g025.tsv")
    assert radius.tolist() == [0.6, 0.3, 0.1, 0.0] and correct.tolist() == [1, 1, 1, 0]
    acc = metrics.certified_accuracy(radius, correct, [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(acc, [0.75, 0.5, 0.25, 0.0])
    reference = results.read_reference(root / "config/reference.tsv")
    assert sorted(reference) == [0.12, 0.25, 0.5] and reference[0.5][0.25] == 0.55
    assert results.lookup(reference[0.5], 0.75) == 0.32 and results.lookup(reference, 2.0) is None
    with pytest.raises(report.ReportError, match="missing result file"):
        results.read_certify(root / "nope.tsv")
    record = results.load_pag(root / "results/pag/smooth-050.pt")
    assert results.eps_index(record, 2.0, Path("p.pt")) == 1
    with pytest.raises(report.ReportError, match=r"^eps 3 not in p.pt \(has 1, 2\)$"):
        results.eps_index(record, 3.0, Path("p.pt"))


def test_pag_titles() -> None:
    base = {"train_sigma": 0.5, "train_eps": 0.5}
    titles = [
        results.pag_title({**base, "kind": kind, "sigma": sigma})
        for kind, sigma in (("standard", 0.0), ("adversarial", 0.0), ("gaussian", 0.5),
                            ("gaussian", 0.0))
    ]  # fmt: skip
    assert titles == [
        "Standard", r"Adv. trained ($\epsilon$=0.5)", r"Smoothed ($\sigma$=0.5)",
        "Noise-trained base\n($\\sigma$=0.5), no smoothing",
    ]  # fmt: skip


def test_entrypoint_prints_one_line(capsys: pytest.CaptureFixture) -> None:
    from robust import cli

    def main(error: Exception | None) -> int:
        if error is not None:
            raise error
        return 0

    wrapped = cli.entrypoint(main)
    assert wrapped(KeyError("missing key 'sigma'")) == 2
    assert capsys.readouterr().err == "error: missing key 'sigma'\n"
    assert wrapped(report.ReportError("first line\nsecond line")) == 2
    assert capsys.readouterr().err == "error: first line\n"
    assert wrapped(None) == 0
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        wrapped(ZeroDivisionError("bug"))


def test_latex_problems_reads_the_log() -> None:
    problems = load_script("build_paper.py").latex_problems(
        "LaTeX Warning: Reference `fig:x' on page 2 undefined on input line 7.\n"
        "Package natbib Warning: Citation `cohen' on page 1 undefined on input line 9.\n"
        "! LaTeX Error: File `figures/fig1.pdf' not found.\n"
    )
    assert problems == [
        "LaTeX Error: File `figures/fig1.pdf' not found.",
        "undefined reference 'fig:x' (??)",
        "undefined citation 'cohen' (??)",
        "missing file 'figures/fig1.pdf'",
    ]
    assert load_script("build_paper.py").latex_problems("Output written on main.pdf") == []


def test_build_paper_without_latexmk(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no latexmk here
    assert not report.latex_available()
    args = ["--tex", "paper/main.tex", "--out", "paper/main.pdf", "--latex_log", "build/x.log"]
    code, err = call("build_paper.py", args, tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: latexmk not found")
    assert "apt-get install texlive-latex-base texlive-latex-recommended" in err
    assert not (tmp_path / "paper").exists()


def make_paper_inputs(root: Path, capsys: pytest.CaptureFixture) -> Path:
    """The paper folder with the real main.tex/refs.bib and hand-made tables, numbers, figures."""
    make_results(root)
    (root / "paper").mkdir()
    for name in ("main.tex", "refs.bib"):
        shutil.copy(ROOT / "paper" / name, root / "paper" / name)
    assert call("make_tables.py", tables_args(), root, capsys)[0] == 0
    keys = ["--train_vs_certify", "k1", "k2"]  # k2 has no figure: the paper skips it
    assert call("make_numbers.py", [*numbers_args(), *keys], root, capsys)[0] == 0
    plt = report.use_style()  # one small placeholder figure stands in for every figure
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    for name in (*FIGURES, "train_vs_certify_k1"):
        report.save_figure(fig, root / "paper/figures" / name)
    plt.close(fig)
    table = "\\begin{tabular}{lc}\n\\toprule\na & b \\\\\n\\midrule\nx & 1 \\\\\n\\bottomrule\n"
    (root / "paper/tables/pag_metrics.tex").write_text(table + "\\end{tabular}\n")
    return root


PAPER_ARGS = [
    "--tex",
    "paper/main.tex",
    "--out",
    "paper/main.pdf",
    "--latex_log",
    "paper/build/lmk.log",
]


@needs_latexmk
def test_paper_builds_without_undefined_references(tmp_path, capsys) -> None:
    root = make_paper_inputs(tmp_path, capsys)
    code, err = call("build_paper.py", PAPER_ARGS, root, capsys)
    assert code == 0, err
    assert (root / "paper/main.pdf").read_bytes().startswith(b"%PDF")
    log = (root / "paper/build/main.log").read_text(encoding="utf-8", errors="replace")
    assert "undefined" not in log.lower()
    assert "tables/pag_metrics.tex" in log  # the optional PAG metrics table was included
    aux = (root / "paper/build/main.aux").read_text(encoding="utf-8")
    assert r"\newlabel{fig:train-vs-certify-k1}" in aux and "train-vs-certify-k2" not in aux

    (root / "paper/figures/eps_sweep.pdf").unlink()  # a missing figure fails the build
    (root / "paper/main.pdf").unlink()
    code, err = call("build_paper.py", PAPER_ARGS, root, capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: LaTeX build failed: ")
    assert "File `figures/eps_sweep.pdf' not found" in err
    assert not (root / "paper/main.pdf").exists()


@pytest.mark.slow
@needs_latexmk
def test_paper_pdf_is_byte_identical_across_builds(tmp_path, capsys) -> None:
    pdfs = []
    for name in ("a", "b"):
        root = make_paper_inputs(tmp_path / name, capsys)
        assert call("build_paper.py", PAPER_ARGS, root, capsys)[0] == 0
        pdfs.append((root / "paper/main.pdf").read_bytes())
    assert pdfs[0] == pdfs[1]
