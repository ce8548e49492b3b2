"""Shared pieces of the figure, table and number scripts: plot style, LaTeX helpers, result readers.

Figures use matplotlib's Agg backend with mathtext only (no TeX at plot time) and a Computer Modern
look; ``save_figure`` writes byte-identical PDF and PNG files for identical inputs. Table helpers
emit complete booktabs ``tabular`` environments as plain strings. ``macro_name`` maps ids to
letter-only LaTeX macro names deterministically:

* every run of letters keeps its letters, first one upper-cased: ``gauss`` -> ``Gauss``;
* every digit becomes its English word: ``10`` -> ``OneZero``;
* a decimal point becomes ``Pt``; any other character ('-', '_', ...) only separates tokens.

So ``macro_name("Cert", "cifar10-gauss-025", "At", 0.25)`` is
``\\CertCifarOneZeroGaussZeroTwoFiveAtZeroPtTwoFive`` (numbers are written with ``format_float``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robust.io import write_bytes

DIGIT_WORDS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
PNG_DPI = 300

# Serif, Computer-Modern-like text without TeX: cmr10 ships with matplotlib. cmr10 has no Unicode
# minus, hence use_mathtext for tick labels; DejaVu Serif is the fallback for missing glyphs.
STYLE: dict[str, Any] = {
    "font.family": "serif",
    "font.serif": ["cmr10", "DejaVu Serif"],
    "mathtext.fontset": "cm",
    "axes.formatter.use_mathtext": True,
    "axes.unicode_minus": False,
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.2,
    "pdf.fonttype": 42,
    "svg.hashsalt": "robust",
    "figure.dpi": 100,
}


class ReportError(ValueError):
    """Bad or missing input of a report script; the message is one line."""


def latex_available() -> bool:
    """True when ``latexmk`` is on PATH (the PDF of the paper can be built)."""
    return shutil.which("latexmk") is not None


def make_parser(description: str | None) -> argparse.ArgumentParser:
    """The project's one-line-error argument parser with the optional ``--log`` of every stage."""
    from robust import cli

    parser = cli.Parser(description=description)
    parser.add_argument("--log", type=Path, help="log file of this stage (optional)")
    return parser


def run_cli(body: Callable[[], None], log: Path | None = None) -> int:
    """Run a figure/table script's body; bad input gives ``error: <one line>`` on stderr and 2.

    Besides the stage scripts' user errors (robust.cli.is_user_error), OSError and RuntimeError
    count as bad input here (an unreadable result file, a failed LaTeX build). With ``log``,
    messages also go to that file (robust.cli.setup_logging).
    """
    from robust import cli

    if log is not None:
        cli.setup_logging(Path(log))
    try:
        body()
    except Exception as err:
        if not (cli.is_user_error(err) or isinstance(err, (OSError, RuntimeError))):
            raise
        return cli.report_error(err)
    return 0


# ----------------------------------------------------------------------------------- figures
def use_style():
    """Select Agg and the shared rcParams; returns ``matplotlib.pyplot``."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(STYLE)
    # fontTools warns about cmr10's zero timestamps when it subsets the font into the PDF.
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: Path) -> tuple[Path, Path]:
    """Write ``<out>.pdf`` and ``<out>.png`` (dpi 300) byte-deterministically and atomically.

    Both are rendered in memory first, so a rendering error leaves no file behind. Dates and
    software versions are dropped from the metadata (they are the only run-dependent bytes).
    """
    out = Path(out)
    pdf, png = io.BytesIO(), io.BytesIO()
    meta = {"CreationDate": None, "Creator": None, "Producer": None}
    fig.savefig(pdf, format="pdf", metadata=meta)
    fig.savefig(png, format="png", dpi=PNG_DPI, metadata={"Software": None})
    paths = (out.with_name(out.name + ".pdf"), out.with_name(out.name + ".png"))
    write_bytes(paths[0], pdf.getvalue())
    write_bytes(paths[1], png.getvalue())
    return paths


# ------------------------------------------------------------------------------- formatting
def format_float(x: float) -> str:
    """Shortest plain form of a parameter value: 0.25 -> '0.25', 8.0 -> '8', 0.001 -> '0.001'."""
    text = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def format_fraction(x: float | None, digits: int = 2) -> str:
    """An accuracy in [0,1] with ``digits`` decimals ('0.59'); None -> '--'."""
    return "--" if x is None else f"{x:.{digits}f}"


def format_percent(x: float | None, digits: int = 1) -> str:
    """An accuracy in [0,1] as a percentage without the sign (0.9083 -> '90.8'); None -> '--'."""
    return "--" if x is None else f"{100.0 * x:.{digits}f}"


def format_signed(x: float | None, digits: int = 2) -> str:
    """A difference in math mode with an explicit sign ('$+0.02$', '$-0.01$', '$0.00$')."""
    if x is None:
        return "--"
    text = f"{abs(x):.{digits}f}"
    if float(text) == 0.0:
        return f"${text}$"
    return f"${'+' if x > 0 else '-'}{text}$"


def format_int(n: int) -> str:
    """An integer with LaTeX thousands separators: 100000 -> '100{,}000'."""
    return f"{int(n):,}".replace(",", "{,}")


def join_words(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c' (empty -> 'n/a')."""
    items = list(items)
    if not items:
        return "n/a"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def tex_escape(text: str) -> str:
    """Escape LaTeX special characters of a plain string (ids, architecture names)."""
    return re.sub(r"([_&%$#{}])", r"\\\1", str(text))


# -------------------------------------------------------------------------------- tables
def bold_max(cells: Sequence[str]) -> list[str]:
    """Wrap the largest numeric cell(s) in ``\\textbf{}``, comparing the values as displayed.

    Ties after rounding are all bold; non-numeric cells ('--') are never bold.
    """
    values = [_as_number(c) for c in cells]
    numbers = [v for v in values if v is not None]
    if not numbers:
        return list(cells)
    best = max(numbers)
    return [rf"\textbf{{{c}}}" if v == best else c for c, v in zip(cells, values, strict=True)]


def _as_number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def table_number(value: float, digits: int) -> str:
    """A table number with a typeset minus sign and no negative zero ('-0.00' -> '0.00')."""
    text = f"{value:.{digits}f}"
    if float(text) == 0.0:
        return text.lstrip("-")
    return "$-$" + text[1:] if text.startswith("-") else text


def interval_cell(stat: dict, digits: int, bold: bool = False) -> str:
    """'mean {\\scriptsize[low, high]}' of a dict with mean/low/high, the mean in bold if asked."""
    mean, low, high = (table_number(stat[k], digits) for k in ("mean", "low", "high"))
    return (rf"\textbf{{{mean}}}" if bold else mean) + rf" {{\scriptsize[{low}, {high}]}}"


def table_row(cells: Sequence[str]) -> str:
    """One tabular row: cells joined by ' & ', ended by ' \\\\'."""
    return " & ".join(cells) + r" \\"


def tabular(colspec: str, header: Sequence[str], body: Sequence[str]) -> str:
    """A complete booktabs tabular (no float wrapper); header/body are ready-made lines."""
    lines = [rf"\begin{{tabular}}{{{colspec}}}", r"\toprule", *header, r"\midrule", *body]
    return "\n".join([*lines, r"\bottomrule", r"\end{tabular}", ""])


# -------------------------------------------------------------------------------- macros
def macro_name(*parts: str | float) -> str:
    """Letter-only macro name from ids and numbers (mapping in the module docstring), with '\\'."""
    words = []
    for part in parts:
        text = part if isinstance(part, str) else format_float(part)
        for token in re.findall(r"[A-Za-z]+|[0-9]|\.", text):
            if token == ".":
                words.append("Pt")
            elif token.isdigit():
                words.append(DIGIT_WORDS[int(token)])
            else:
                words.append(token[0].upper() + token[1:])
    return "\\" + "".join(words)


def newcommand(name: str, value: str) -> str:
    """``\\newcommand{\\Name}{value}``; the name must be a backslash followed by letters only."""
    if not re.fullmatch(r"\\[A-Za-z]+", name):
        raise ReportError(f"invalid macro name {name!r}: letters only")
    return f"\\newcommand{{{name}}}{{{value}}}"


# ------------------------------------------------------------------------------- readers
def load_json(path: Path) -> dict:
    """A result JSON as a dict; missing or malformed file -> one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"missing result file {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReportError(f"malformed JSON in {path}: {err.msg} (line {err.lineno})") from None


def require(record: dict, key: str, path: Path) -> Any:
    """``record[key]`` or a one-line error naming the file and the key."""
    if key not in record:
        raise ReportError(f"{path}: missing key '{key}'")
    return record[key]


def read_certify(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(radius float64 [N], correct bool [N]) from a certify TSV (Cohen et al.'s columns)."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"missing result file {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if rows and not {"radius", "correct"} <= set(rows[0]):
        raise ReportError(f"{path}: expected columns 'radius' and 'correct'")
    try:
        radius = np.array([float(r["radius"]) for r in rows], dtype=np.float64)
        correct = np.array([int(r["correct"]) == 1 for r in rows], dtype=bool)
    except (TypeError, ValueError):
        raise ReportError(f"{path}: non-numeric radius or correct value") from None
    return radius, correct


def certified_accuracy(
    radius: np.ndarray, correct: np.ndarray, radii: Sequence[float]
) -> np.ndarray:
    """Approximate certified accuracy [len(radii)]: share of images correct with radius >= r."""
    if radius.size == 0:
        return np.zeros(len(radii))
    return np.array([float(np.mean(correct & (radius >= r))) for r in radii])


def read_reference(path: Path) -> dict[float, dict[float, float]]:
    """Published certified accuracies: {sigma: {radius: accuracy}} (non-numeric columns dropped)."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"missing reference file {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    if not rows or rows[0][0] != "sigma":
        raise ReportError(f"{path}: the header must start with 'sigma'")
    radii = {i: _as_number(h) for i, h in enumerate(rows[0]) if i > 0 and _as_number(h) is not None}
    return {float(r[0]): {radii[i]: float(r[i]) for i in radii} for r in rows[1:] if r}


def lookup(table: dict[float, Any], key: float) -> Any:
    """``table[key]`` with float keys compared by ``math.isclose``; None if absent."""
    return next((v for k, v in table.items() if math.isclose(k, key, abs_tol=1e-9)), None)


PAG_KEYS = ("column", "kind", "sigma", "eps", "labels", "targets", "class_names", "x0", "images")


def load_pag(path: Path) -> dict:
    """A PAG result (.pt, see the result formats) as a dict; missing/corrupt -> one-line error."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ReportError(f"missing PAG result {path}")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a corrupt file
        raise ReportError(f"cannot read PAG result {path}: {type(err).__name__}") from None
    for key in PAG_KEYS:
        require(record, key, path)
    return record


def eps_index(record: dict, eps: float, path: Path) -> int:
    """Position of ``eps`` in the record's generation radii, or a one-line error listing them."""
    values = [float(e) for e in record["eps"]]
    for i, value in enumerate(values):
        if math.isclose(value, eps, rel_tol=1e-6, abs_tol=1e-9):
            return i
    found = ", ".join(format_float(v) for v in values)
    raise ReportError(f"eps {format_float(eps)} not in {path} (has {found})")


def pag_role(record: dict) -> str:
    """'smoothed' (sigma > 0), 'standard', 'adversarial' or 'base' (noise-trained f, unsmoothed)."""
    if float(record["sigma"]) > 0:
        return "smoothed"
    return {"standard": "standard", "adversarial": "adversarial"}.get(str(record["kind"]), "base")


def pag_title(record: dict) -> str:
    """Column title of a PAG column in mathtext, from its metadata."""
    role = pag_role(record)
    if role == "smoothed":
        return rf"Smoothed ($\sigma$={format_float(record['sigma'])})"
    if role == "adversarial":
        return rf"Adv. trained ($\epsilon$={format_float(record.get('train_eps', 0.0))})"
    if role == "base":
        sigma = format_float(record.get("train_sigma", 0.0))
        return f"Noise-trained base\n($\\sigma$={sigma}), no smoothing"
    return "Standard"
