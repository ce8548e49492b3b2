"""A resumable row log: TSV rows flushed one by one to a scratch file, published atomically at the
end. The scratch file starts with a fingerprint line (a hash of everything that determines the
rows): a restart with the same fingerprint keeps the complete rows already written and drops a torn
last line, one with another fingerprint starts afresh. Rows start with their key (the image index).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robust import io


def fingerprint_of(params: dict[str, Any]) -> str:
    """A stable hash of JSON-serialisable parameters (paths are turned into strings)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class RowLog:
    """Append-only TSV rows with crash-safe resume in the scratch file ``path`` (not a declared
    output of the stage); params determine the rows (their fingerprint)."""

    def __init__(self, path: Path, header: Sequence[str], params: dict[str, Any]) -> None:
        self.path = Path(path)
        self.header = tuple(header)
        self.tag = f"# fingerprint {fingerprint_of(params)}"
        self.rows: list[tuple[str, ...]] = self._recover()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Rewrite the recovered prefix so that a torn last line never survives.
        with io.atomic_open(self.path, "w", encoding="utf-8") as handle:
            handle.write(self._text(self.rows, with_tag=True))
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in finish()

    def _recover(self) -> list[tuple[str, ...]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return []
        lines = text.split("\n")
        if len(lines) < 2 or lines[0] != self.tag or lines[1] != "\t".join(self.header):
            return []
        rows = [tuple(line.split("\t")) for line in lines[2:-1]]  # lines[-1]: torn or empty
        return [row for row in rows if len(row) == len(self.header)]

    def _text(self, rows: list[tuple[str, ...]], with_tag: bool) -> str:
        lines = ([self.tag] if with_tag else []) + ["\t".join(self.header)]
        lines += ["\t".join(row) for row in rows]
        return "\n".join(lines) + "\n"

    @property
    def done(self) -> set[str]:
        """Keys (first column, as text) of the rows already written."""
        return {row[0] for row in self.rows}

    def append(self, row: Sequence[Any]) -> None:
        """Write one row and flush it to disk before returning."""
        cells = tuple(str(cell) for cell in row)
        if len(cells) != len(self.header):
            raise ValueError(f"row has {len(cells)} cells, header has {len(self.header)}")
        self._handle.write("\t".join(cells) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.rows.append(cells)

    def finish(self, out: Path) -> dict[str, np.ndarray]:
        """Publish the rows sorted by key to ``out``, remove the scratch file, return columns."""
        self._handle.close()
        rows = sorted(self.rows, key=lambda row: int(row[0]))
        io.write_text(out, self._text(rows, with_tag=False))
        self.path.unlink(missing_ok=True)
        return {name: np.array([row[i] for row in rows]) for i, name in enumerate(self.header)}

    def mean_seconds(self) -> float:
        """Mean of the ``time`` column (h:mm:ss.ffffff) in seconds, 0.0 without rows."""
        col = self.header.index("time")
        times = [row[col].split(":") for row in self.rows]
        total = sum(int(h) * 3600 + int(m) * 60 + float(s) for h, m, s in times)
        return total / len(self.rows) if self.rows else 0.0
