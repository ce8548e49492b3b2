"""What each stage reads besides its parameters: the library files its script imports and the
result files of the ids it lists. Snakemake computes them here; DVC reads literal lists from
dvc.yaml, which ``REFRESH`` writes and the check_params stage keeps in step with params.yaml.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

PACKAGE = "robust"


@cache
def _imported_modules(source: Path) -> frozenset[str]:
    """Dotted names of the ``robust`` modules (or attributes) imported anywhere in ``source``,
    also inside functions, with their packages: ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``.
    Cached: a Snakefile asks for every stage script, and they share their imports."""
    text = source.read_text(encoding="utf-8")
    if PACKAGE not in text:
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for parts in (name.split(".") for name in names if name.split(".")[0] == PACKAGE):
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(found)


def _module_file(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    candidates = (base.with_suffix(".py"), base / "__init__.py")
    return next((path for path in candidates if path.is_file()), None)  # None: an attribute


@cache
def library_deps(script: str) -> tuple[str, ...]:
    """Sorted paths (relative to the repository, the working folder) of the ``robust`` files that
    ``script`` (e.g. ``"scripts/train.py"``) imports, transitively."""
    base = Path("scripts")  # holds the robust package
    todo, files = [Path(script)], {base / PACKAGE / "__init__.py"}
    while todo:
        for dotted in _imported_modules(todo.pop()):
            path = _module_file(base, dotted)
            if path is not None and path not in files:
                files.add(path)
                todo.append(path)
    return tuple(sorted(map(str, files)))


def id_files(pattern: str, ids) -> list[str]:
    """``pattern`` filled with each id once, in first-mentioned order."""
    return [pattern.format(i) for i in dict.fromkeys(ids)]


def certify_files(runs) -> list[str]:
    """The TSV and JSON of each certify run, once each."""
    return [
        f"results/certify/{run}.{ext}" for run in dict.fromkeys(runs) for ext in ("tsv", "json")
    ]


def result_inputs(params: dict) -> dict[str, list[str]]:
    """Stage name -> the result files it reads, for the stages that read lists of ids (a foreach
    stage: the union over its entries), each list in first-mentioned order."""
    report, metrics = params["report"], params["pag_metrics"]
    certified, trained = report["certified"]["runs"], report["training"]["models"]
    figures, comparisons = report["pag_figures"].values(), report["train_vs_certify"].values()
    pag, models = "results/pag/{}.pt", "results/models/{}.pt"
    summaries = certify_files(certified) + id_files("results/eval/{}.json", trained)
    summaries += id_files("results/train/{}.json", trained)
    return {
        "pag_metrics": id_files(pag, [run for c in metrics["columns"] for run in c.split("+")])
        + id_files(models, metrics["judges"]),
        "score_alignment": id_files(models, params["score_alignment"]["models"]),
        "fig_pag": id_files(pag, [column for figure in figures for column in figure["columns"]]),
        "fig_certified": certify_files(certified),
        "fig_train_vs_certify": certify_files([run for fig in comparisons for run in fig["runs"]]),
        "fig_training": id_files("results/train/{}.json", trained),
        "tables": summaries,
        "numbers": summaries + id_files(pag, report["numbers"]["columns"]),
    }  # fmt: skip


# The folders of the per-id result files that :func:`result_inputs` lists.
RESULT_FOLDERS = ("results/pag/", "results/models/", "results/certify/", "results/train/",
                  "results/eval/")  # fmt: skip


def summary_name(column: str) -> str:
    """The file name (no suffix) of a PAG metrics column's summary: its first run."""
    return column.split("+")[0]


def result_outputs(params: dict) -> dict[str, list[str]]:
    """Stage name -> the per-id summary files it writes (``dvc metrics show`` lists them): the
    report's models and certify runs (tables), the PAG metrics columns (pag_metrics)."""
    report, columns = params["report"], params["pag_metrics"]["columns"]
    return {
        "tables": id_files("results/metrics/models/{}.json", report["training"]["models"])
        + id_files("results/metrics/certify/{}.json", report["certified"]["runs"]),
        "pag_metrics": id_files("results/metrics/pag/{}.json", map(summary_name, columns)),
    }


def generated_lists(params: dict) -> dict[tuple[str, str], tuple[tuple[str, ...], list[str]]]:
    """Every list of dvc.yaml that follows the parameters: (stage or top-level plot, list key) ->
    (prefixes of its generated entries, the entries); other entries are kept as written."""
    lists = {(s, "deps"): (RESULT_FOLDERS, f) for s, f in result_inputs(params).items()}
    summaries = ("results/metrics/models/", "results/metrics/certify/", "results/metrics/pag/")
    lists |= {(s, "metrics"): (summaries, f) for s, f in result_outputs(params).items()}
    curves = id_files("results/plots/certified/{}.tsv", params["report"]["certified"]["runs"])
    plots = ("results/plots/certified/",)
    lists[("certified_accuracy", "y")] = (plots, [f"{c}: certified_accuracy" for c in curves])
    return lists


def refresh_dvc_yaml(text: str, params: dict) -> str:
    """``text`` of a dvc.yaml whose generated lists are rewritten: in every ``deps:`` list that
    starts with a stage script, the ``scripts/robust/`` entries become ``library_deps(script)``
    right after the script, and in every list of :func:`generated_lists` the entries under its
    prefixes become those entries, at the end of the list. Every other line is kept."""
    lists, out, section = generated_lists(params), [], None
    key, key_indent, indent, prefixes, pending = None, 0, "", (), []
    for line in text.splitlines():
        depth, item = len(line) - len(line.lstrip()), line.strip().removeprefix("- ")
        if key is not None and line.strip() and depth <= key_indent:
            out, pending, key = out + [indent + e for e in pending], [], None
        if depth == 2 and line.rstrip().endswith(":"):
            section = item.rstrip(":")  # a stage, or a top-level plot
        if key is not None:
            indent = line[:depth] + ("- " if line.strip().startswith("- ") else "")
            generated = item.startswith(prefixes) and "${" not in item
            if generated or (key == "deps" and item.startswith("scripts/robust/")):
                continue
            out.append(line)
            if key == "deps" and out[-2].strip() == "deps:" and item.startswith("scripts/"):
                out += [f"{indent}{path}" for path in library_deps(item)]
            continue
        out.append(line)
        if line.rstrip().endswith(":") and item.rstrip(":") in ("deps", "metrics", "y"):
            key, key_indent = item.rstrip(":"), depth
            indent = " " * (depth + 2) + ("" if key == "y" else "- ")
            prefixes, pending = lists.get((section, key), ((), []))
    if key is not None:
        out += [indent + e for e in pending]
    return "\n".join(out) + "\n"


def stale_stages(text: str, params: dict) -> list[str]:
    """Stages (and top-level plots) of a dvc.yaml ``text`` whose generated lists differ from what
    ``params`` and the imports give (empty: current)."""
    import yaml

    def sections(document: str) -> dict:
        data = yaml.safe_load(document)
        plots = {name: plot for entry in data.get("plots", []) for name, plot in entry.items()}
        return data["stages"] | plots

    current, fresh = sections(text), sections(refresh_dvc_yaml(text, params))
    return [name for name in fresh if current.get(name) != fresh[name]]


# A name or value DVC may put into a command unquoted: the ids, and the scalars a command names.
SHELL_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def checked_names(params) -> set[str]:
    """Every key and scalar of the parameters, written as DVC interpolates it (``true``, ``16.0``),
    that is safe in a shell command unquoted: ``check_params`` writes one file per name, which the
    DVC stages whose commands interpolate it unquoted depend on."""
    if isinstance(params, dict):
        params = [*params, *params.values()]
    if isinstance(params, list):
        return set().union(*map(checked_names, params))
    text = str(params).lower() if isinstance(params, bool) else str(params)
    return {text} if SHELL_SAFE.fullmatch(text) else set()


REFRESH = "python -m robust.deps params.yaml dvc.yaml"  # run from the repository root


if __name__ == "__main__":  # the command line: python -m robust.deps PARAMS DVC_YAML
    import sys

    from robust.config import load_yaml

    params, target = load_yaml(Path(sys.argv[1])), Path(sys.argv[2])
    target.write_text(refresh_dvc_yaml(target.read_text(encoding="utf-8"), params), "utf-8")
