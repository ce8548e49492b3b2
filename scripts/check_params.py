"""Check the parameters against the schema and their cross-references, and that dvc.yaml's generated
lists follow them, before any compute.

DVC runs this as the first stage on params.yaml; Snakemake runs the same check when it parses the
workflow, and this job on the files it loaded (several ``--configfile`` files merge, later ones
overriding). Prints one line per problem, naming the file and the key, and exits 2. On success
``--out`` becomes a folder with one empty file per checked name (:func:`robust.deps.checked_names`):
each DVC stage depends on the files of the names its command holds unquoted, so a stage run on its
own (``dvc repro -s``) with a name no check has passed stops before its command reaches a shell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robust import cli, config, deps, io


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, nargs="+", required=True, help="files, merged in order")
    p.add_argument("--schema", type=Path, required=True)
    p.add_argument("--dvc_yaml", type=Path, help="whose lists must follow --params (DVC's run)")
    p.add_argument("--out", type=Path, required=True, help="folder, written if the check passes")
    p.add_argument("--log", type=Path, required=True)
    return p.parse_args(argv)


def fail(args: argparse.Namespace, lines: list[str]) -> int:
    """Print ``error: <line>`` per problem, log them, write no output; the exit status 2."""
    text = "\n".join(f"error: {line}" for line in lines)
    print(text, file=sys.stderr)
    args.log.write_text(text + "\n", encoding="utf-8")
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    try:  # a file that does not parse is named by load_yaml
        sources = [(path, config.load_yaml(path)) for path in args.params]
    except config.ParamsError as err:
        return fail(args, str(err).splitlines())
    params = config.merge([data for _, data in sources])
    try:
        config.check(params, args.schema)
    except config.ParamsError as err:
        return fail(args, config.attribute(str(err), sources).splitlines())
    if args.dvc_yaml is not None:
        stale = deps.stale_stages(args.dvc_yaml.read_text(encoding="utf-8"), params)
        if stale:
            return fail(args, [f"{args.dvc_yaml}: the inputs of {', '.join(stale)} do not follow "
                               f"{args.params[-1]}; run {deps.REFRESH}"])  # fmt: skip
    args.log.write_text(f"{' + '.join(map(str, args.params))}: valid\n", encoding="utf-8")
    io.write_folder(args.out, dict.fromkeys(sorted(deps.checked_names(params)), ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
