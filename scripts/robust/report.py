"""The error and the plot style of the report scripts: matplotlib's Agg backend, mathtext only, a
Computer Modern look, byte-identical PDF and PNG files for identical inputs."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path
from typing import Any

from robust.io import write_bytes

PNG_DPI = 300

# Serif, Computer-Modern-like text without TeX: cmr10 ships with matplotlib. cmr10 has no Unicode
# minus, hence use_mathtext for tick labels; DejaVu Serif is the fallback for missing glyphs.
STYLE: dict[str, Any] = {
    "font.family": "serif", "font.serif": ["cmr10", "DejaVu Serif"], "mathtext.fontset": "cm",
    "axes.formatter.use_mathtext": True, "axes.unicode_minus": False,
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.grid": True, "grid.alpha": 0.3,
    "lines.linewidth": 1.2, "pdf.fonttype": 42, "svg.hashsalt": "robust", "figure.dpi": 100,
}  # fmt: skip


class ReportError(ValueError):
    """Bad or missing input of a report script; the message is one line."""


def latex_available() -> bool:
    """True when ``latexmk`` is on PATH (the PDF of the paper can be built)."""
    return shutil.which("latexmk") is not None


def use_style():
    """Select Agg and the shared rcParams; returns ``matplotlib.pyplot``."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(STYLE)
    # fontTools warns about cmr10's zero timestamps when it subsets the font into the PDF.
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: Path) -> None:
    """Write ``<out>.pdf`` and ``<out>.png`` (dpi 300) byte-deterministically and atomically, and
    close the figure in pyplot. Both are rendered in memory first: an error leaves no file."""
    import matplotlib.pyplot as plt

    pdf, png = io.BytesIO(), io.BytesIO()
    meta = {"CreationDate": None, "Creator": None, "Producer": None}  # the run-dependent bytes
    fig.savefig(pdf, format="pdf", metadata=meta)
    fig.savefig(png, format="png", dpi=PNG_DPI, metadata={"Software": None})
    plt.close(fig)
    for suffix, data in ((".pdf", pdf), (".png", png)):
        write_bytes(out.with_name(out.name + suffix), data.getvalue())
