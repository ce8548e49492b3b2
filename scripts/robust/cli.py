"""Shared plumbing of the thin stage scripts: one-line errors, logging, device choice, JSON
output, progress bars.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from robust import io

LOG = logging.getLogger("robust")

# Errors that mean "bad input", reported as one line; anything else is a bug and keeps its
# traceback. OSError: a read-only folder, a full disk, a missing file; its message names the path.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, KeyError)


class UsageError(ValueError):
    """A command-line argument is inconsistent with the others."""


def entrypoint(main: Callable[[list[str] | None], int | None]) -> Callable[[list[str] | None], int]:
    """Wrap a script's ``main``: bad-input errors (``USER_ERRORS`` and every exception class the
    library defines, all with one-line messages) become ``error: <first line of the message>`` on
    stderr and in the log, and exit status 2."""

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        timer = Timer()
        try:
            code = int(main(argv) or 0)
        except Exception as err:
            if not (isinstance(err, USER_ERRORS) or type(err).__module__.startswith("robust.")):
                raise
            # a KeyError's key without the quotes of its repr
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            message = (message.splitlines() or [type(err).__name__])[0]
            print(f"error: {message}", file=sys.stderr)
            if LOG.handlers:  # without handlers logging's last resort would print it a second time
                LOG.error("%s", message, extra=FILE_ONLY)
            return 2
        LOG.info("finished in %.1f s", timer.seconds, extra=FILE_ONLY)
        return code

    return wrapped


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line, ``error: ...``, exit status 2 (no usage dump)."""

    def error(self, message: str) -> None:  # noqa: D102 - argparse API
        self.exit(2, f"error: {self.prog}: {message}\n")


def add_common(parser: argparse.ArgumentParser, record_time: bool = False) -> None:
    """Flags every compute stage takes: ``--device`` (execution only) and ``--log``; with
    ``record_time`` also ``--record_time/--no-record_time`` (stages that time their work)."""
    parser.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda if available"
    )
    parser.add_argument("--log", type=Path, required=True, help="log file of this stage")
    if record_time:
        parser.add_argument(
            "--record_time",
            action=argparse.BooleanOptionalAction,
            required=True,
            help="write wall-clock times into the outputs (else 0, for byte-identical outputs)",
        )


FILE_ONLY = {"file_only": True}


class _CurrentStderr(logging.Handler):
    """Writes to ``sys.stderr`` as it is at emit time (a test harness may replace it), above any
    progress bar drawn there; skips records logged with ``extra=FILE_ONLY``."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        if getattr(record, "file_only", False):
            return
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


# The flags that name a script's outputs: files, and folders it writes into.
OUTPUT_FILES = ("out", "summary", "curve", "state", "metrics", "per_image", "table", "record")
OUTPUT_FOLDERS = ("out_dir", "summary_dir", "work_dir", "cache_dir")


def check_writable(args: argparse.Namespace) -> None:
    """Check that the folder of every output flag of ``args`` (or its nearest existing parent; none
    is created) takes a new file; else raise the ``OSError`` naming the path."""
    import errno
    import tempfile

    flags = vars(args)
    folders = [Path(flags[name]).parent for name in OUTPUT_FILES if flags.get(name) is not None]
    folders += [Path(flags[name]) for name in OUTPUT_FOLDERS if flags.get(name) is not None]
    for folder in folders:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
        with tempfile.TemporaryFile(dir=folder):
            pass


def setup_logging(path: Path | None, outputs: argparse.Namespace) -> None:
    """Log to ``path`` (overwritten; None: no file) and to stderr, then :func:`check_writable` the
    parsed flags ``outputs``, so that a bad folder fails in the log before any work."""
    LOG.handlers.clear()
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    handlers: list[logging.Handler] = [_CurrentStderr()]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        LOG.addHandler(handler)
    LOG.info("command: %s", " ".join(sys.argv), extra=FILE_ONLY)
    check_writable(outputs)


# CPU threads of every stage: CPU results depend on the thread count (sums split differently), so
# every stage fixes it, whichever tool starts it and whatever OMP_NUM_THREADS says; CPU parallelism
# comes from running jobs side by side (snakemake --cores N).
CPU_THREADS = 1


def resolve_device(name: str) -> Any:
    """The torch device for a ``--device`` value (``auto``: cuda when visible); sets torch's CPU
    threads to :data:`CPU_THREADS`. On cuda it turns on cuDNN autotuning, which pays for itself on
    the few batch shapes every stage repeats; rounding may then differ between GPU runs, as it
    already may between GPUs, and counts remain exact samples of the classifier the run computes."""
    import torch

    torch.set_num_threads(CPU_THREADS)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was requested but no CUDA device is available")
    if name == "cuda":
        torch.backends.cudnn.benchmark = True
    return torch.device(name)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    io.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def subset_indices(total: int, skip: int, max_images: int) -> list[int]:
    """Cohen et al.'s image subset: 0, skip, 2*skip, ... below ``total``, at most ``max_images``."""
    return list(range(0, total, skip))[:max_images]


class Timer:
    """Wall-clock seconds since construction."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def progress(label: str, total: int | None, unit: str, initial: int = 0):
    """A labelled progress bar on stderr (``train cifar10-gauss-025``), redrawn as one whole line at
    most every 2 s so that parallel jobs' bars stay apart; quiet when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=label, unit=unit, disable=None, mininterval=2.0,
                unit_scale=unit == "B", dynamic_ncols=True, file=sys.stderr)  # fmt: skip


def blocks(items: list[int], size: int, done: set[str], label: str) -> Iterator[list[int]]:
    """The ``items`` not yet in ``done`` (keys as text), in order, in lists of at most ``size``,
    with a progress bar on stderr that counts items."""
    if size < 1:
        raise ValueError(f"block size must be >= 1, got {size}")
    todo = [i for i in items if str(i) not in done]
    if len(todo) < len(items):
        LOG.info("resuming: %d of %d already done", len(items) - len(todo), len(items))
    with progress(label, len(items), "image", initial=len(items) - len(todo)) as bar:
        for start in range(0, len(todo), size):
            yield todo[start : start + size]
            bar.update(len(todo[start : start + size]))
