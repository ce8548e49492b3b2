"""What each stage reads besides its parameters: the library files its script imports, and for the
stages that read a list of ids from the parameters, the result files of those ids.

Snakemake computes both from this module when it plans a run. DVC reads them from dvc.yaml, whose
lists are literal (DVC cannot expand a list of ids into files): ``REFRESH`` writes them there from
the imports and from params.yaml, and the check_params stage refuses a dvc.yaml that does not
follow params.yaml.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = "robust"


def _statements(body: list[ast.AST]):
    """Every statement in ``body``, nested ones too (function and class bodies, branches,
    handlers): imports are statements, so expressions need not be visited."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from _statements(getattr(node, field, None) or [])


@cache
def _imported_modules(source: Path) -> frozenset[str]:
    """Dotted names of ``robust`` modules imported anywhere in ``source`` (also inside
    functions). Cached: a Snakefile asks for every stage script, and they share their imports."""
    text = source.read_text(encoding="utf-8")
    if PACKAGE not in text:
        return frozenset()
    found: set[str] = set()
    for node in _statements(ast.parse(text).body):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == PACKAGE:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
    return frozenset(found)


def _module_file(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None  # an attribute, not a module


@cache
def library_deps(script: str, root: str = "scripts") -> tuple[str, ...]:
    """Sorted paths (relative to the repository) of the ``robust`` files ``script`` imports,
    transitively.

    Args:
        script: path of the stage script, e.g. ``"scripts/train.py"``.
        root: folder that holds the ``robust`` package.
    """
    base = Path(root)
    todo, seen = [Path(script)], set()
    files: set[Path] = {base / PACKAGE / "__init__.py"}
    while todo:
        current = todo.pop()
        for dotted in _imported_modules(current):
            path = _module_file(base, dotted)
            parts = dotted.split(".")
            # importing a.b.c also runs a/__init__ and a/b/__init__
            for i in range(1, len(parts)):
                init = _module_file(base, ".".join(parts[:i]))
                if init is not None:
                    files.add(init)
            if path is not None and path not in seen:
                seen.add(path)
                files.add(path)
                todo.append(path)
    return tuple(sorted(str(p) for p in files))


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
    return {
        "pag_metrics": id_files(pag, [run for c in metrics["columns"] for run in c.split("+")])
        + id_files(models, metrics["judges"]),
        "score_alignment": id_files(models, params["score_alignment"]["models"]),
        "fig_pag": id_files(pag, [column for figure in figures for column in figure["columns"]]),
        "fig_certified": certify_files(certified),
        "fig_train_vs_certify": certify_files([run for fig in comparisons for run in fig["runs"]]),
        "fig_training": id_files("results/train/{}.json", trained),
        "tables": certify_files(certified) + id_files("results/eval/{}.json", trained),
        "numbers": certify_files(certified) + id_files("results/eval/{}.json", trained)
        + id_files("results/train/{}.json", trained) + id_files(pag, report["numbers"]["columns"]),
    }  # fmt: skip


# The folders of the per-id result files that :func:`result_inputs` lists.
RESULT_FOLDERS = ("results/pag/", "results/models/", "results/certify/", "results/train/",
                  "results/eval/")  # fmt: skip


def refresh_dvc_yaml(text: str, params: dict) -> str:
    """``text`` of a dvc.yaml whose generated lists are rewritten: in every ``deps:`` list that
    starts with a stage script, the ``scripts/robust/`` entries become ``library_deps(script)``
    right after the script, and for the stages of :func:`result_inputs` the literal entries in
    :data:`RESULT_FOLDERS` become those files, at the end of the list. Every other line is kept."""
    results, out, stage, pending, in_deps = result_inputs(params), [], None, [], False
    for line in text.splitlines():
        item = line.strip().removeprefix("- ")
        if in_deps and not line.strip().startswith("- "):
            out, pending, in_deps = out + pending, [], False
        if line.startswith("  ") and line[2] != " " and line.rstrip().endswith(":"):
            stage = line.strip().rstrip(":")
        generated = item.startswith("scripts/robust/") or (
            stage in results and item.startswith(RESULT_FOLDERS) and "${" not in item
        )
        if in_deps and generated:
            continue
        out.append(line)
        if line.strip() == "deps:":
            in_deps = True
        elif in_deps and out[-2].strip() == "deps:" and item.startswith("scripts/"):
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}- {path}" for path in library_deps(item)]
            pending = [f"{indent}- {path}" for path in results.get(stage, [])]
    return "\n".join(out + pending) + "\n"


def stale_stages(text: str, params: dict) -> list[str]:
    """Stages of a dvc.yaml ``text`` whose generated lists differ from what ``params`` and the
    imports give (empty: current)."""
    import yaml

    def deps(document: str) -> dict:
        stages = yaml.safe_load(document)["stages"]
        return {name: stage.get("do", stage).get("deps") for name, stage in stages.items()}

    current, fresh = deps(text), deps(refresh_dvc_yaml(text, params))
    return [name for name in fresh if current.get(name) != fresh[name]]


REFRESH = "python -m robust.deps params.yaml dvc.yaml"  # run from the repository root


if __name__ == "__main__":  # the command line: python -m robust.deps PARAMS DVC_YAML
    import sys

    from robust.config import load_yaml

    params, target = load_yaml(Path(sys.argv[1])), Path(sys.argv[2])
    target.write_text(refresh_dvc_yaml(target.read_text(encoding="utf-8"), params), "utf-8")
