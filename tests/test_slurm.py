"""The SLURM profile on a real cluster: a one-node SLURM on localhost runs one model's chain of the
smoke pipeline again (every GPU rule, then everything after them), submitted by
snakemake-executor-plugin-slurm with workflow/profiles/slurm, to the local build's bytes.

The cluster needs root. The fixture installs Debian's slurm-wlm and munge when they are missing,
runs munged, slurmctld and slurmd in the foreground from a private folder and links its slurm.conf
to /etc/slurm/slurm.conf (job steps drop SLURM_CONF and look there). Where that cannot be done it
skips with the reason; afterwards it stops and removes everything it started or made.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pipeline_utils import ROOT, digests, run, snakemake_jobs, workspace

PROFILE = "workflow/profiles/slurm"
CONF = Path("/etc/slurm/slurm.conf")
PORTS = (6817, 6818)  # slurmctld, slurmd
PARTITION = "pagtest"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sinfo", "squeue", "sbatch", "srun", "scancel")
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")


def rule_blocks() -> dict[str, str]:
    """Rule name -> its text, from the rule files."""
    blocks = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule )", path.read_text(), flags=re.M):
            match = re.match(r"rule (\w+):", block)
            if match:
                blocks[match.group(1)] = block
    return blocks


def gpu_rules() -> set[str]:
    """Rules whose `resources:` declare a gpu."""
    return {rule for rule, text in rule_blocks().items() if re.search(r"^\s+gpu=\d", text, re.M)}


def profile() -> dict:
    return yaml.safe_load((ROOT / PROFILE / "config.yaml").read_text())


def test_profile_sends_every_gpu_rule_to_the_gpu_partition():
    """A GPU rule missing from the profile would run with one thread in the CPU partition, where its
    `sbatch --gpus=1` fails."""
    config = profile()
    assert gpu_rules() == set(config["set-resources"]) == set(config["set-threads"]) != set()
    for resources in config["set-resources"].values():
        assert resources["slurm_partition"] == "$PAG_SLURM_GPU_PARTITION"
    assert "slurm_account" not in config["default-resources"]


# --- a one-node cluster ---------------------------------------------------------------------------


def port_busy(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError:
            return True
    return False


def missing_binaries() -> list[str]:
    return [name for name in DAEMONS + CLIENTS if shutil.which(name) is None]


def succeeds(cmd: list[str]) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def install_slurm() -> str | None:
    """apt-get install slurm-wlm and munge, after an update if the package lists are stale.
    Returns why that failed, or None."""
    if shutil.which("apt-get") is None:
        return "no apt-get to install slurm-wlm and munge"
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "slurm-wlm", "munge"]
    if not succeeds(install) and succeeds(["apt-get", "update", "-qq"]):
        succeeds(install)  # the package lists were stale
    missing = missing_binaries()
    return f"apt-get could not provide {', '.join(missing)}" if missing else None


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "a test SLURM cluster needs root"
    if "SLURM_JOB_ID" in os.environ:
        return "already inside a SLURM job"
    if CONF.exists() or CONF.is_symlink():
        return f"{CONF} exists: this machine has its own SLURM, which the test must not touch"
    busy = [port for port in PORTS if port_busy(port)]
    if busy:
        return f"SLURM ports {busy} are in use"
    return install_slurm() if missing_binaries() else None


def node_cpus() -> int:
    return len(os.sched_getaffinity(0))


def node_memory_mb() -> int:
    """RealMemory of the node: the total minus a margin (slurmd drains a node that claims more)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 * 9 // 10
    raise AssertionError("no MemTotal in /proc/meminfo")


def slurm_conf(folder: Path, munge_socket: Path, host: str) -> str:
    settings = {
        "ClusterName": "pagtest",
        "SlurmctldHost": f"{host}(127.0.0.1)",
        "SlurmUser": "root",
        "AuthType": "auth/munge",
        "AuthInfo": f"socket={munge_socket}",
        "SlurmctldPort": PORTS[0],
        "SlurmdPort": PORTS[1],
        "StateSaveLocation": folder / "state",
        "SlurmdSpoolDir": folder / "spool",
        "SlurmctldPidFile": folder / "slurmctld.pid",
        "SlurmdPidFile": folder / "slurmd.pid",
        "SlurmctldLogFile": folder / "slurmctld.log",
        "SlurmdLogFile": folder / "slurmd.log",
        # No systemd or cgroups in a container: track processes by parent id, bind no tasks.
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core_Memory",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
        "MailProg": "/bin/true",
        "ReturnToService": 2,
        # squeue, the status command without slurmdbd, shows a finished job for MinJobAge seconds.
        "MinJobAge": 300,
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines.append(
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={node_cpus()} RealMemory={node_memory_mb()}"
        " State=UNKNOWN"
    )
    lines.append(f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def munged(folder: Path, key: Path, munge_socket: Path) -> list[str]:
    # As root munged refuses Debian's seed folder as insecure: every path is private.
    paths = {
        "key-file": key,
        "socket": munge_socket,
        "pid-file": folder / "munged.pid",
        "seed-file": folder / "munge.seed",
        "log-file": folder / "munged.log",
    }
    return ["munged", "-F", "--force", *(f"--{name}={path}" for name, path in paths.items())]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def existing(paths: list[Path]) -> list[Path]:
    return [path for path in paths if path.is_file()]


def wait_for(check, what: str, logs: list[Path], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tails = "".join(f"\n--- {log}\n{log.read_text()[-2000:]}" for log in existing(logs))
            raise AssertionError(f"{what} did not happen within {timeout} s{tails}")
        time.sleep(0.5)


def node_state() -> str:
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running one-node cluster whose default partition is PARTITION; yields its folder."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    (folder / "state").mkdir()
    (folder / "spool").mkdir()
    key, munge_socket, conf = folder / "munge.key", folder / "munge.socket", folder / "slurm.conf"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf.write_text(slurm_conf(folder, munge_socket, socket.gethostname().split(".")[0]))
    made_dir = not CONF.parent.exists()
    logs = [folder / f"{name}.out" for name in DAEMONS]
    logs += [folder / "munged.log", folder / "slurmctld.log", folder / "slurmd.log"]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(start(munged(folder, key, munge_socket), logs[0]))
        wait_for(munge_socket.exists, "munged's socket", logs)
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.symlink_to(conf)
        procs.append(start(["slurmctld", "-D", "-i"], logs[1]))
        procs.append(start(["slurmd", "-D"], logs[2]))
        wait_for(lambda: node_state() == "idle", "the node turning idle", logs)
        yield folder
    finally:
        # Jobs first; slurmd before the controller (without one it ignores SIGTERM); munged last.
        subprocess.run(["scancel", "--user", getpass.getuser()], capture_output=True, timeout=30)
        for proc in reversed(procs):
            stop(proc)
        if CONF.is_symlink() and CONF.resolve() == conf.resolve():
            CONF.unlink()
            if made_dir:
                CONF.parent.rmdir()


# --- the pipeline through it ----------------------------------------------------------------------


def fit_to_node(config: dict, mem_per_job: int) -> list[str]:
    """Flags that fit the profile's requests to the test node; everything else is as in the profile.

    The node has no GPU: the GPU rules' gpu=1, which the plugin turns into `sbatch --gpus=1`, is
    set to 0, since sbatch refuses such a job here (the end of the test shows it). Each job gets one
    thread (one CPU) and at most mem_per_job MB. These keys given on the command line replace the
    profile's entries as a whole, so the other entries are repeated."""
    flags = ["--set-threads", *(f"{rule}=1" for rule in config["set-threads"])]
    flags.append("--set-resources")
    for rule, resources in config["set-resources"].items():
        fitted = {**resources, "gpu": 0, "mem_mb": min(resources["mem_mb"], mem_per_job)}
        flags += [f"{rule}:{name}={value}" for name, value in fitted.items()]
    defaults = config["default-resources"]
    defaults = {**defaults, "mem_mb": min(defaults["mem_mb"], mem_per_job)}
    flags += ["--default-resources", *(f"{name}={value}" for name, value in defaults.items())]
    return flags


# Without slurmdbd sacct has no answer, so the status comes from squeue. Short intervals: the smoke
# jobs take seconds, and the plugin adds 10 s to the interval after each check that saw no job end.
FAST_STATUS = [
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1",
    "--seconds-between-status-checks", "1",
    "--retries", "0",  # a failing job fails the test at once
]  # fmt: skip


def exit_codes(slurmctld_log: Path) -> dict[str, int]:
    """SLURM job id -> exit status, from the controller's log (squeue forgets a job MinJobAge
    seconds after its end, and sacct needs slurmdbd)."""
    found = re.findall(r"_job_complete: JobId=(\d+) WEXITSTATUS (\d+)", slurmctld_log.read_text())
    return {job: int(code) for job, code in found}


# The model whose chain runs again through SLURM: training, evaluation, two certifications, a
# prediction, a PAG column, then everything after them.
MODEL = "synthetic-gauss-025"


@pytest.mark.slow
def test_a_models_chain_runs_through_slurm(slurm, smk, tmp_path, monkeypatch):
    """In a copy of the session's Snakemake build, one model forced to train again from scratch:
    every job of its chain but the localrules is a SLURM job that exits 0, and the outputs equal the
    local build's byte for byte. With the profile as committed a GPU rule asks sbatch for a GPU."""
    repo = workspace(smk, tmp_path / "repo")
    for state in (repo / "resources" / "state" / "train").glob(f"{MODEL}.*"):
        state.unlink()
    monkeypatch.setenv("PAG_SLURM_PARTITION", PARTITION)
    monkeypatch.setenv("PAG_SLURM_GPU_PARTITION", PARTITION)
    fitted = fit_to_node(profile(), node_memory_mb() // node_cpus())
    started = time.monotonic()
    cmd = ["snakemake", "--workflow-profile", PROFILE, *FAST_STATUS]
    proc = run([*cmd, *fitted, "--forcerun", f"results/models/{MODEL}.pt"], repo, timeout=900)
    print(f"{MODEL}'s chain through SLURM: {time.monotonic() - started:.0f} s")
    log = proc.stdout + proc.stderr

    jobs = snakemake_jobs(log)
    assert {
        rule: jobs.get(rule) for rule in ("train", "evaluate", "certify", "predict", "pag")
    } == {
        "train": 1,
        "evaluate": 1,
        "certify": 2,
        "predict": 1,
        "pag": 1,
    }
    submitted = SUBMITTED.findall(log)
    local = re.findall(r"^localrule (\w+):", log, flags=re.M)
    assert len(submitted) + len(local) == sum(jobs.values())
    assert len(submitted) >= 6 and "train" not in local  # train, evaluate, 2 certify, predict, pag
    codes = exit_codes(slurm / "slurmctld.log")
    assert {codes.get(job) for job in submitted} == {0}, codes
    assert "Nothing to be done" in run(["snakemake", "-n"], repo).stdout
    assert digests(repo) == digests(smk)

    # The profile as committed: a GPU rule's requests reach sbatch, which this node refuses.
    gpu = run([*cmd, "-f", "results/eval/synthetic-std.json"], repo, check=False)
    assert gpu.returncode != 0 and not SUBMITTED.search(gpu.stderr)
    for flag in ("--gpus=1", f"-p {PARTITION}", "--cpus-per-task=4", "--mem 16000", "-t 240"):
        assert flag in gpu.stderr, flag
