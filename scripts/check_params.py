"""Check params.yaml against the schema and its cross-references, and that dvc.yaml's generated
lists follow it, before any compute.

DVC runs this as the first stage (every other stage depends on its output); Snakemake runs the same
check when it parses the workflow. Prints one line per problem, naming the key, and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robust import cli, config, deps, io


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, required=True)
    p.add_argument("--schema", type=Path, required=True)
    p.add_argument("--dvc_yaml", type=Path, required=True, help="whose lists must follow --params")
    p.add_argument("--out", type=Path, required=True, help="written only when the check passes")
    p.add_argument("--log", type=Path, required=True)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    try:
        params = config.load_yaml(args.params)
        config.check(params, args.schema)
        stale = deps.stale_stages(args.dvc_yaml.read_text(encoding="utf-8"), params)
        if stale:
            raise config.ParamsError(
                f"{args.dvc_yaml}: the inputs of {', '.join(stale)} do not follow {args.params}; "
                f"run {deps.REFRESH}"
            )
    except config.ParamsError as err:
        lines = [
            f"error: {line}"
            if line.startswith(str(args.params))
            else f"error: {args.params}: {line}"
            for line in str(err).splitlines()
        ]
        print("\n".join(lines), file=sys.stderr)
        args.log.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return 2
    args.log.write_text(f"{args.params} is valid\n", encoding="utf-8")
    io.write_text(args.out, "params.yaml is valid\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
