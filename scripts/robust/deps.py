"""Which library files a stage script imports, so each rule and stage can declare them as inputs.

Snakemake does not track modules imported by a script and DVC only tracks declared deps, so both
tools list a script's transitive imports inside the ``robust`` package. Snakemake computes them with
this module; a test checks that dvc.yaml declares the same files.
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


def refresh_dvc_yaml(text: str) -> str:
    """``text`` of a dvc.yaml whose library lists are regenerated: in every ``deps:`` list that
    starts with a stage script, the ``scripts/robust/`` entries become ``library_deps(script)``,
    listed right after the script; every other line is kept as it is."""
    out, script = [], None
    for line in text.splitlines():
        item = line.strip().removeprefix("- ")
        if line.strip().startswith("- scripts/robust/"):
            continue
        out.append(line)
        if line.strip() == "deps:":
            script = "first"
        elif script == "first" and item.startswith("scripts/") and item.endswith(".py"):
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}- {path}" for path in library_deps(item)]
            script = None
        elif script == "first":
            script = None
    return "\n".join(out) + "\n"


REFRESH = "python -m robust.deps dvc.yaml"  # run from the repository root


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "dvc.yaml")
    target.write_text(refresh_dvc_yaml(target.read_text(encoding="utf-8")), encoding="utf-8")
