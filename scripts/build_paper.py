"""Build the paper PDF with latexmk, reproducibly, and fail on any LaTeX problem.

Builds in the folder of --latex_log with fixed dates; copies the PDF to --out only when the LaTeX
log shows no error, undefined reference or citation, or missing file (layout defects: warnings).
Without latexmk it says how to get one and exits 2.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from pathlib import Path

from robust import cli, report
from robust.io import write_bytes, write_text

INSTALL = (
    "latexmk not found, so the PDF is not built (all figures and tables are written); "
    "to build it install TeX: apt-get install texlive-latex-base texlive-latex-recommended "
    "texlive-fonts-recommended latexmk"
)
# (pattern in the final LaTeX log, one-line description); the first match is reported.
PROBLEMS = (
    (r"^! (.*)$", "{0}"),
    (r"Reference `([^']+)' on page \d+ undefined", "undefined reference '{0}' (??)"),
    (r"Citation `([^']+)' on page \d+ undefined", "undefined citation '{0}' (??)"),
    (r"There were undefined (references|citations)", "undefined {0} (??)"),
    (r"File `([^']+)' not found", "missing file '{0}'"),
    (r"Empty `thebibliography' environment", "empty bibliography"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path)
    parser.add_argument("--tex", type=Path, required=True, help="main .tex file")
    parser.add_argument("--out", type=Path, required=True, help="where the PDF goes")
    parser.add_argument("--latex_log", type=Path, required=True, help="latexmk's output")
    return parser.parse_args(argv)


def latex_problems(log: str) -> list[str]:
    """One-line descriptions of the problems found in a LaTeX .log (empty list: clean build)."""
    found = []
    for pattern, message in PROBLEMS:
        found += [message.format(*m.groups()) for m in re.finditer(pattern, log, re.MULTILINE)]
    return found


TOLERANCE_PT = 3.0


def layout_problems(log: str) -> list[str]:
    """One-line descriptions of the layout defects a reader sees in a LaTeX .log: a float taller
    than the page (cut off, caption lost), a line into the margin by more than TOLERANCE_PT."""
    found = [f"float too large for the page by {m.group(1)}pt (input line {m.group(2)})"
             for m in re.finditer(r"Float too large for page by ([\d.]+)pt on input line (\d+)",
                                  log)]  # fmt: skip
    for m in re.finditer(r"Overfull \\[hv]box \(([\d.]+)pt too (?:wide|high)\)(.*)$", log, re.M):
        if float(m.group(1)) > TOLERANCE_PT:
            found.append(f"overfull box by {m.group(1)}pt{m.group(2)}")
    return found


def run_latexmk(tex: Path, build_dir: Path, log: Path) -> int:
    """latexmk in tex's folder with fixed dates; its stdout and stderr go to ``log``."""
    env = dict(os.environ, SOURCE_DATE_EPOCH="0", FORCE_SOURCE_DATE="1", TZ="UTC")
    env["max_print_line"] = "10000"  # keep log lines unwrapped so the patterns match
    # -g: always run pdflatex, so a deleted input cannot leave a stale PDF looking up to date
    cmd = ["latexmk", "-pdf", "-g", "-interaction=nonstopmode", "-halt-on-error"]
    cmd += [f"-outdir={build_dir}", tex.name]
    proc = subprocess.run(
        cmd, cwd=tex.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    write_text(log, proc.stdout)
    return proc.returncode


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not report.latex_available():
        raise report.ReportError(INSTALL)
    cli.setup_logging(args.log, outputs=args)
    tex = args.tex.resolve()
    if not tex.is_file():
        raise report.ReportError(f"missing LaTeX source {args.tex}")
    build_dir = args.latex_log.resolve().parent
    build_dir.mkdir(parents=True, exist_ok=True)
    code = run_latexmk(tex, build_dir, args.latex_log)
    latex_log = build_dir / f"{tex.stem}.log"
    text = latex_log.read_text(encoding="utf-8", errors="replace") if latex_log.is_file() else ""
    problems = latex_problems(text)
    if code != 0 or problems:
        first = problems[0] if problems else f"latexmk exited with {code}"
        raise report.ReportError(
            f"LaTeX build failed: {first} (see {latex_log} and {args.latex_log})"
        )
    for problem in layout_problems(text):
        cli.LOG.warning("layout: %s", problem)
    write_bytes(args.out, (build_dir / f"{tex.stem}.pdf").read_bytes())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
