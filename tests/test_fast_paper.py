"""benchmarks/fast_paper.py: the device recipe that runs the fast-mode paper in budgeted calls."""

from __future__ import annotations

import json
import sys
import time

import pytest

from pipeline_utils import ROOT, copy_repo, tool_env

sys.path.insert(0, str(ROOT / "benchmarks"))
import fast_paper  # noqa: E402

DRY_RUN = """Job stats:
job             count
------------  -------
train               2
all                 1
total               3
"""


def test_jobs_left_reads_the_total_of_a_dry_run():
    assert fast_paper.jobs_left(DRY_RUN) == 3
    assert fast_paper.jobs_left("Building DAG of jobs...\nNothing to be done.\n") == 0


def test_a_command_past_its_budget_is_interrupted_then_killed():
    status, seconds, stopped = fast_paper.run_with_budget(["sleep", "30"], budget=0.3, grace=5)
    assert stopped and status != 0 and seconds < 5
    # a command that ignores SIGINT is killed once the grace period is over
    stubborn = [sys.executable, "-c", "import signal, time; "
                "signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(30)"]  # fmt: skip
    start = time.perf_counter()
    status, _, stopped = fast_paper.run_with_budget(stubborn, budget=1.0, grace=0.5)
    assert stopped and status != 0 and time.perf_counter() - start < 10
    assert fast_paper.run_with_budget(["true"], budget=5, grace=1)[::2] == (0, False)


def test_a_lost_interrupt_is_sent_again(monkeypatch, tmp_path):
    """An interrupt can land before Snakemake handles it; the next one, RESEND s later, stops it
    well inside the grace period."""
    monkeypatch.setattr(fast_paper, "RESEND", 0.3)
    child = tmp_path / "second_stops.py"
    child.write_text(
        "import signal, sys, time\n"
        "seen = []\n"
        "def on_int(*_):\n"
        "    seen.append(1)\n"
        "    if len(seen) == 2:\n"
        "        sys.exit(7)\n"
        "signal.signal(signal.SIGINT, on_int)\n"
        "time.sleep(30)\n"
    )
    start = time.perf_counter()
    status, _, stopped = fast_paper.run_with_budget([sys.executable, str(child)], 1.0, grace=20)
    assert (stopped, status) == (True, 7)
    assert time.perf_counter() - start < 10


def test_bad_arguments_are_one_line_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        fast_paper.main(["--configfile", str(tmp_path / "no.yaml"), "--budget", "5",
                         "--timings", str(tmp_path / "t.json")])  # fmt: skip
    assert "no.yaml: no such file" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


@pytest.mark.slow
def test_budgeted_calls_resume_until_done_and_record_each(tmp_path, monkeypatch):
    repo = copy_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("PATH", tool_env()["PATH"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    timings = tmp_path / "timings.json"
    smoke = (repo / "config/smoke.yaml").read_text()
    timed = smoke.replace("record_time: false", "record_time: true")
    (repo / "config/timed.yaml").write_text(timed)
    target = "results/models/synthetic-std.pt"
    common = ["--configfile", "config/timed.yaml", "--timings", str(timings),
              "--snakemake_args", "--cores 2 --resources gpu=2", target]  # fmt: skip
    # the first call's budget ends before the work does
    assert fast_paper.main(["--budget", "2", *common]) == fast_paper.LEFT
    assert fast_paper.main(["--budget", "300", *common]) == fast_paper.DONE
    assert (repo / target).is_file()
    assert fast_paper.main(["--budget", "300", *common]) == fast_paper.DONE
    record = json.loads(timings.read_text())
    first, second, third = record["calls"]
    assert first["stopped_at_budget"] and first["jobs_left_after"] > 0
    assert second["jobs_left_before"] == first["jobs_left_after"]
    assert not second["stopped_at_budget"] and second["exit_status"] == 0
    assert second["jobs_left_after"] == 0
    assert third["seconds"] == 0 and third["jobs_left_before"] == 0  # nothing left: no run
    assert record["done"] and record["device"] and "--replace-workflow-config" in record["command"]
    trained = record["stages"]["train"]["synthetic-std"]
    assert trained["seconds"] > 0 and 0 <= trained["final"]["test_accuracy"] <= 1
