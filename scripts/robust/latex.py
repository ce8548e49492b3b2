"""LaTeX text of the tables and in-text numbers: number formats, booktabs tables (complete
``tabular`` environments as plain strings), macros."""

from __future__ import annotations

import re
from collections.abc import Sequence

from robust.report import ReportError


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
    sign = "" if float(text) == 0.0 else "+" if x > 0 else "-"
    return f"${sign}{text}$"


def format_int(n: int) -> str:
    """An integer with LaTeX thousands separators: 100000 -> '100{,}000'."""
    return f"{int(n):,}".replace(",", "{,}")


def join_words(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c' (empty -> 'n/a')."""
    *head, last = list(items) or ["n/a"]
    return f"{', '.join(head)} and {last}" if head else last


def tex_escape(text: str) -> str:
    """Escape LaTeX special characters of a plain string (ids, architecture names)."""
    return re.sub(r"([_&%$#{}])", r"\\\1", str(text))


def bold_max(cells: Sequence[str]) -> list[str]:
    """Wrap the largest numeric cell(s) in ``\\textbf{}``, compared as displayed (ties after
    rounding are all bold; non-numeric cells such as '--' never)."""
    values = [as_number(c) for c in cells]
    best = max((v for v in values if v is not None), default=None)
    pairs = zip(cells, values, strict=True)
    return [rf"\textbf{{{c}}}" if v is not None and v == best else c for c, v in pairs]


def as_number(cell: str) -> float | None:
    """The cell as a float, or None when it is not a number ('--')."""
    try:
        return float(cell)
    except ValueError:
        return None


def table_number(value: float, digits: int) -> str:
    """A table number with a typeset minus sign and no negative zero ('-0.00' -> '0.00')."""
    text = f"{abs(value):.{digits}f}"
    return "$-$" + text if value < 0 and float(text) != 0.0 else text


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


def newcommand(name: str, value: str) -> str:
    """``\\newcommand{\\Name}{value}``; the name must be a backslash followed by letters only."""
    if not re.fullmatch(r"\\[A-Za-z]+", name):
        raise ReportError(f"invalid macro name {name!r}: letters only")
    return f"\\newcommand{{{name}}}{{{value}}}"
