"""Run the fast-mode paper on a lent GPU in as few commands as the per-command limit allows.

A lent machine runs one command for at most 10 minutes, and the fast-mode paper may need more. Each
call of this script runs Snakemake on the given configuration until the pipeline is done or the
budget is spent, then stops it cleanly: SIGINT (repeated every few seconds, SIGKILL after a grace
period, then ``--unlock``), upon which Snakemake ends its jobs and marks their outputs incomplete;
the next call reruns those (``--rerun-incomplete``) and training resumes from its per-epoch state
file. Checkpoints and results stay in the working tree between calls (the
machine keeps them while warm). Every call appends one record to ``--timings`` (wall seconds, jobs
left before and after, whether it was stopped) and, once nothing is left, a summary of the times
and accuracies the stages recorded. Exit status: 0 when the pipeline is done, 3 when work is left,
1 when Snakemake failed.

    python benchmarks/fast_paper.py --configfile config/fast.yaml --budget 540 \\
        --timings benchmarks/fast-paper-gpu.json --snakemake_args "--cores all"
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from robust.cli import write_json  # noqa: E402  (atomic, as every output of the project)

DONE, FAILED, LEFT = 0, 1, 3
RESEND = 5.0  # seconds between SIGINTs to a call past its budget
TOTAL = re.compile(r"^total\s+(\d+)\s*$", re.MULTILINE)


def snakemake_cmd(args: argparse.Namespace) -> list[str]:
    """The Snakemake call of every step: the configuration replaces params.yaml's. Targets come
    first: flags such as --resources take several values and would swallow them."""
    cmd = ["snakemake", *args.targets, "--configfile", str(args.configfile)]
    cmd += ["--replace-workflow-config", "--rerun-incomplete"]
    return cmd + shlex.split(args.snakemake_args)


def jobs_left(dry_run_output: str) -> int:
    """Jobs a ``snakemake -n`` run would execute: its "total" job count, 0 when it lists none."""
    found = TOTAL.findall(dry_run_output)
    return int(found[-1]) if found else 0


def count_jobs(cmd: list[str]) -> int:
    proc = subprocess.run([*cmd, "-n", "--quiet", "rules"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n failed: {proc.stderr.strip().splitlines()[-1:]}")
    return jobs_left(proc.stdout + proc.stderr)


def _default_sigint() -> None:
    """In the child: SIGINT back to its default. A shell starts background commands with SIGINT
    ignored, the child inherits that, and Python then installs no KeyboardInterrupt handler, so
    Snakemake would never see the stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_with_budget(cmd: list[str], budget: float, grace: float) -> tuple[int, float, bool]:
    """Run ``cmd`` for at most ``budget`` s; past it, SIGINT (again every ``RESEND`` s: one that
    lands while Snakemake starts up can be lost) and ``grace`` s to stop before SIGKILL.

    Returns (exit status, wall seconds, whether it was stopped)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_default_sigint)
    try:
        return proc.wait(timeout=budget), time.perf_counter() - start, False
    except subprocess.TimeoutExpired:
        deadline = time.perf_counter() + grace
    while proc.poll() is None:
        left = deadline - time.perf_counter()
        if left <= 0:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=min(RESEND, left))
        except subprocess.TimeoutExpired:
            continue
    return proc.returncode, time.perf_counter() - start, True


def device_facts() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "python": sys.version.split()[0],
    }


def stage_summary(root: Path) -> dict:
    """What the stages recorded: training seconds and accuracy, evaluation accuracies, seconds per
    certified image (0 unless the configuration's timing.record_time is true)."""
    out: dict = {"train": {}, "eval": {}, "certify": {}}
    for path in sorted((root / "results/train").glob("*.json")):
        record = json.loads(path.read_text())
        out["train"][path.stem] = {"seconds": record.get("seconds"), "final": record.get("final")}
    for path in sorted((root / "results/eval").glob("*.json")):
        out["eval"][path.stem] = json.loads(path.read_text())
    for path in sorted((root / "results/certify").glob("*.tsv")):
        rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
        seconds = sorted(float(row[-1]) for row in rows)
        median = seconds[len(seconds) // 2] if seconds else None
        out["certify"][path.stem] = {"images": len(rows), "median_seconds_per_image": median}
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configfile", type=Path, required=True, help="e.g. config/fast.yaml")
    p.add_argument("--budget", type=float, required=True, help="seconds to run Snakemake")
    p.add_argument("--grace", type=float, default=45.0, help="seconds to stop after the budget")
    p.add_argument("--timings", type=Path, required=True, help="JSON record, appended per call")
    p.add_argument("--snakemake_args", default="--cores all", help="more Snakemake flags")
    p.add_argument("targets", nargs="*", help="Snakemake targets (default: the whole paper)")
    args = p.parse_args(argv)
    if not args.configfile.is_file():
        p.error(f"--configfile {args.configfile}: no such file")
    if args.budget <= 0 or args.grace <= 0:
        p.error("--budget and --grace must be positive seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cmd = snakemake_cmd(args)
    record = json.loads(args.timings.read_text()) if args.timings.is_file() else {"calls": []}
    record.update(configfile=str(args.configfile), command=shlex.join(cmd), **device_facts())
    before = count_jobs(cmd)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    status, seconds, stopped = 0, 0.0, False
    if before:
        status, seconds, stopped = run_with_budget(cmd, args.budget, args.grace)
    if stopped:  # a Snakemake stopped hard keeps its lock, which would refuse the next call
        subprocess.run([*cmd, "--unlock"], capture_output=True, check=False)
    after = count_jobs(cmd)
    record["calls"].append(
        {"started": started, "seconds": round(seconds, 2), "stopped_at_budget": bool(stopped),
         "exit_status": status, "jobs_left_before": before, "jobs_left_after": after}
    )  # fmt: skip
    record["done"] = after == 0
    record["seconds_total"] = round(sum(c["seconds"] for c in record["calls"]), 2)
    if record["done"]:
        record["stages"] = stage_summary(Path.cwd())
    write_json(args.timings, record)
    print(f"call {len(record['calls'])}: {seconds:.0f} s, jobs left {before} -> {after}")
    if status and not stopped:
        return FAILED  # a failing job: calling again would fail again
    return DONE if record["done"] else LEFT


if __name__ == "__main__":
    sys.exit(main())
