"""Atomic file writes: a reader never sees a partial file. Every output goes to a temporary file
in the destination folder, is flushed and fsynced, then renamed over the destination with
``os.replace`` (atomic on POSIX within one file system)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it to ``path`` on success. On an
    exception the temporary file is removed and ``path`` is left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0o022)  # read it (setting it is the only way) and restore it
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide results from collaborators
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:  # a full disk: name the file
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


# The tensors of a prepared dataset file that its digest covers (prototypes: synthetic data only).
PREPARED_TENSORS = ("x_train", "y_train", "x_test", "y_test", "prototypes")


def tensor_digest(tensors: Any) -> str:
    """SHA-256 over the sorted names, dtypes, shapes and raw bytes of a {name: tensor} mapping
    (a model's state dict, a prepared dataset's tensors): a flipped byte changes it."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def sealed(data: dict) -> dict:
    """A prepared dataset dict with ``sha256``, the digest of its :data:`PREPARED_TENSORS`."""
    return data | {"sha256": tensor_digest({k: data[k] for k in PREPARED_TENSORS if k in data})}


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_folder(path: str | os.PathLike, files: dict[str, str]) -> None:
    """Replace whatever is at ``path`` by a folder holding exactly ``files`` ({name: text}), built
    beside it and renamed into place: a reader sees the old contents or the new, never a mix."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a private scratch folder beside it: the new folder is built there, the old one moved there
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        new = work / "new"
        new.mkdir()  # with the umask's permissions, unlike mkdtemp's 0700
        for name, text in files.items():
            (new / name).write_text(text, encoding="utf-8")
        if path.exists() or path.is_symlink():
            os.replace(path, work / "old")
        os.replace(new, path)
    finally:
        shutil.rmtree(work)


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)
