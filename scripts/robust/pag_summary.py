"""The summary of the perceptual-alignment metrics: per-column intervals over training runs and
images, the calibration controls, paired differences to the baseline column with their Holm
correction, the agreement of the judges (and of the references) on the order of the columns, and
the LaTeX table and per-image TSV of it all.

Metric values come as {column: {eps key: {metric: float64 [R, P]}}} (R training runs of the
column's recipe, P (start image, target) pairs shared by every column; eps keys are str(float)).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from robust import bootstrap, latex
from robust.alignment import MetricSpec, kendall_tau

CONTROL_TITLES = {"random": "random direction (control)", "reference": "step to $r_t$ (control)"}


def column_means(metrics: Mapping, at: str, name: str) -> list[float]:
    """The mean of metric ``name`` at eps ``at`` for each column, in order."""
    return [float(np.mean(sweep[at][name])) for sweep in metrics.values()]


def agreement(
    metrics: Mapping, at: str, pairs: Sequence[tuple[str, str]], intervals: Mapping
) -> list[dict]:
    """For each (metric a, metric b) at eps ``at``: Kendall's tau of the columns ordered by each
    (None where undefined: one column, or a metric equal for all), whether the order is the same
    (tau = 1), and whether b keeps the order of every pair of columns that a tells apart (95%
    intervals that do not overlap; ``intervals``: {column: {eps key: {metric: {low, high}}}}),
    which near-ties cannot upset."""
    out = []
    for a, b in pairs:
        tau = kendall_tau(column_means(metrics, at, a), column_means(metrics, at, b))
        tau = None if math.isnan(tau) else tau
        means = dict(zip(metrics, column_means(metrics, at, b), strict=True))
        resolved = [
            (hi, lo) for hi, lo in itertools.permutations(metrics, 2)
            if intervals[hi][at][a]["low"] > intervals[lo][at][a]["high"]
        ]  # fmt: skip
        out.append({
            "metrics": [a, b], "kendall_tau": tau, "same_order": tau == 1.0,
            "resolved_pairs": len(resolved),
            "resolved_same_order": all(means[hi] > means[lo] for hi, lo in resolved),
        })  # fmt: skip
    return out


def judge_pairs(roles: Sequence[str]) -> list[tuple[str, str]]:
    """(judge_<r1>_<kind>, judge_<r2>_<kind>) for every pair of judges, for share and prob."""
    pairs = itertools.combinations(roles, 2)
    return [(f"judge_{a}_{k}", f"judge_{b}_{k}") for a, b in pairs for k in ("share", "prob")]


def summarize(metrics: dict, controls: dict, b: int, seed: int) -> dict:
    """{"columns", "controls", "paired", "at"}: two-level intervals of every column and control at
    every eps, and the Holm-corrected paired differences of every column minus the first one at
    the largest eps (``at``); the controls take no part in the comparisons."""
    baseline = next(iter(metrics))
    at = max(metrics[baseline], key=float)
    per_column, paired = bootstrap.summarize_runs(metrics, baseline, at, b, seed)
    per_control, _ = bootstrap.summarize_runs(controls, "random", at, b, seed)
    return {"columns": per_column, "controls": per_control, "paired": paired, "at": at}


def _cell(stat: dict, digits: int, bold: bool, mark: bool) -> str:
    cell = latex.interval_cell(stat, digits, bold)
    if stat.get("seed_sd") is not None:
        cell += rf" {{\scriptsize$\pm${latex.table_number(stat['seed_sd'], digits)}}}"
    return cell + (r"$^\dagger$" if mark else "")


def latex_table(summary: dict, specs: list[MetricSpec]) -> str:
    """booktabs tabular at the comparison eps: a row per column (mean [95% interval], +- the
    seed-to-seed standard deviation when there are several training runs; the best mean as
    displayed in bold; a dagger where the difference to the first column survives Holm's
    correction), then the two control rows; grouped metric columns (the shown metrics)."""
    specs = [s for s in specs if s.shown]
    key, paired = summary["settings"]["eps_key"], summary["paired"]["columns"]
    groups = {s.group: sum(t.group == s.group for t in specs) for s in specs}
    top = [f"\\multicolumn{{{n}}}{{c}}{{{latex.tex_escape(g)}}}" for g, n in groups.items()]
    arrow = {"max": r"$\uparrow$", "min": r"$\downarrow$"}
    rules, first = [], 2  # table column 1 holds the row titles
    for n in groups.values():
        rules, first = rules + [f"\\cmidrule(lr){{{first}-{first + n - 1}}}"], first + n
    labels = [f"{s.label} {arrow[s.better]}" for s in specs]
    header = [latex.table_row(["", *top]), " ".join(rules), latex.table_row(["Column", *labels])]
    columns, controls = summary["columns"], summary["controls"]
    rows = [[c["title"]] for c in columns.values()]
    control_rows = [[CONTROL_TITLES[c]] for c in controls]
    for s in specs:
        digits = 1 if s.name == "tv_per_norm" else 2  # TV per norm is O(10-100), the rest O(1)
        shown = [round(c["eps"][key][s.name]["mean"], digits) for c in columns.values()]
        best = max(shown) if s.better == "max" else min(shown)
        for row, (cid, c), v in zip(rows, columns.items(), shown, strict=True):
            mark = paired.get(cid, {}).get(s.name, {}).get("holds", False)
            row.append(_cell(c["eps"][key][s.name], digits, v == best, mark))
        for row, c in zip(control_rows, controls.values(), strict=True):
            row.append(latex.interval_cell(c["eps"][key][s.name], digits))
    body = [latex.table_row(r) for r in rows] + [r"\midrule"]
    body += [latex.table_row(r) for r in control_rows]
    return latex.tabular("l" + "c" * len(specs), header, body)


def tsv_text(
    metrics: dict, controls: dict, runs: Mapping[str, list[str]], pairs: list, names
) -> str:
    """Header and one line per (column, training run, eps, pair); controls with run '-'."""
    lines = ["\t".join(["column", "run", "eps", "pair", "idx", "label", "target", *names])]
    every = [(c, runs[c], s) for c, s in metrics.items()] + [
        (f"control:{c}", ["-"], s) for c, s in controls.items()
    ]
    for column, run_ids, sweep in every:
        for key, values in sweep.items():
            for r, run in enumerate(run_ids):
                for i, pair in enumerate(pairs):
                    cells = [column, run, key, str(i), *map(str, pair)]
                    cells += [f"{float(values[n][r][i]):.6g}" for n in names]
                    lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"
