"""Fetching files with a checksum, a download cache shared by concurrent jobs, archive extraction,
and CIFAR-10 prepared from its python-pickle batches.

Every failure is a ``DataError`` with a one-line message naming the file, the source and, for
downloads, the expected and actual checksums. Writes are atomic (a temporary sibling, then a
rename): no partial file is left behind, not even by a killed job.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import pickle
import posixpath
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from robust import io

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_FILES = (*_TRAIN_BATCHES, "test_batch", "batches.meta")
_BLOCK = 1 << 20
_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error)


class DataError(RuntimeError):
    """A dataset could not be fetched, verified, extracted or read (one-line message)."""


def _line(err: BaseException) -> str:
    """An exception as one line (some carry newlines or an empty message)."""
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        err = err.reason  # "[Errno 111] Connection refused" rather than "<urlopen error ...>"
    return " ".join(str(err).split()) or type(err).__name__


def digest_of(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _open_source(url: str, archive: Path | None, timeout: float) -> IO[bytes]:
    if archive is None and "://" in url:
        return urllib.request.urlopen(url, timeout=timeout)  # http(s) and file URLs by design
    return open(archive or url, "rb")  # a local archive, or a plain path given in place of the URL


def fetch(
    url: str, dest: Path, expected: str | None, algorithm: str = "md5", archive: Path | None = None,
    timeout: float = 60.0, progress: Callable[[int, int | None], None] | None = None,
) -> str:  # fmt: skip
    """Put a verified copy of ``url`` (http(s) or file URL, or a local path) at ``dest``,
    atomically, and return its hex digest. A ``dest`` with the ``expected`` digest is reused;
    ``expected`` None (unpinned) accepts any content, whose digest the caller can report for
    pinning. ``archive``: a local copy used instead (``url`` is then only named in messages).
    ``progress(bytes received, total bytes or None)`` is called after each block.

    Raises DataError (unreachable host, missing file, short read, checksum mismatch; one line
    naming the expected digest): ``dest`` is then unchanged and no temporary file remains.
    """
    dest = Path(dest)
    if expected is not None and dest.is_file() and digest_of(dest, algorithm) == expected:
        return expected
    source = url if archive is None else f"{archive} (instead of {url})"
    digest, received = hashlib.new(algorithm), 0
    try:
        with io.atomic_open(dest, "wb") as target, _open_source(url, archive, timeout) as response:
            length = getattr(response, "headers", {}).get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while block := response.read(_BLOCK):
                digest.update(block)
                target.write(block)
                received += len(block)
                if progress is not None:
                    progress(received, total)
            if expected is not None and digest.hexdigest() != expected:
                raise DataError(
                    f"{dest.name}: checksum mismatch for {source}: expected {algorithm} "
                    f"{expected}, actual {algorithm} {digest.hexdigest()} ({received} bytes); "
                    "download removed"
                )
    except (OSError, ValueError, http.client.HTTPException) as err:
        # URLError/HTTPError/timeouts are OSErrors; ValueError: malformed URL.
        raise DataError(
            f"{dest.name}: cannot fetch {source}: {_line(err)} "
            f"(expected {algorithm} {expected or 'unpinned'}, {received} bytes received)"
        ) from None
    return digest.hexdigest()


def cache_path(cache_dir: Path, url: str) -> Path:
    """Where the download of ``url`` is kept: ``cache_dir/<16 hex of sha256(url)>.download``."""
    return Path(cache_dir) / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.download"


def cached_fetch(
    url: str, cache_dir: Path, sha256: str | None, timeout: float = 60.0
) -> tuple[Path, str]:
    """(path, hex sha256) of a copy of ``url`` in the shared ``cache_dir``, downloaded first if
    needed. Several checkpoints can come from one archive (Cohen et al. release all their models
    in one file): the first job downloads while the others wait on a lock file. ``sha256`` None
    (unpinned) reuses a cached copy as it is and accepts any fresh download.

    Raises DataError (unreachable host, digest mismatch, a web page instead of a file): no file is
    then left under the cached name.
    """
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"sha256 must be 64 lowercase hex digits or None, got {sha256}")
    dest = cache_path(cache_dir, url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_suffix(".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other jobs wait here; closing the file releases it
        if dest.is_file():
            actual = digest_of(dest, "sha256")
            if sha256 is None or actual == sha256:
                return dest, actual
            dest.unlink()  # another or a damaged file: download again and check the new copy
        actual = fetch(url, dest, sha256, "sha256", timeout=timeout)
        if sha256 is None and _is_web_page(dest):  # a pinned digest already rules a page out
            dest.unlink()
            raise DataError(
                f"{url} sent a web page, not a file (a sign-in or download-confirmation page?); "
                "use a direct-download address"
            )
    return dest, actual


def _is_web_page(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(512).lstrip().lower().startswith((b"<!doctype html", b"<html"))


def _normalise(name: str) -> str:
    return posixpath.normpath(name.replace("\\", "/")).lstrip("/")


def check_member_name(member: str) -> None:
    """Raise ValueError unless ``member`` is a relative path inside an archive (no ``..``)."""
    if not member or member.startswith("/") or ".." in member.replace("\\", "/").split("/"):
        raise ValueError(f"archive member '{member}' must be a relative path without '..'")


def _copy(source: IO[bytes], dest: Path) -> Path:
    with source, io.atomic_open(dest, "wb") as target:
        shutil.copyfileobj(source, target, _BLOCK)
    return Path(dest)


def extract_member(archive: Path, member: str, dest: Path) -> Path:
    """Copy one regular file of a tar (any compression) or zip ``archive`` to ``dest``, atomically.

    Only ``dest`` is written, so absolute names, ``..`` and links inside the archive cannot write
    anywhere else; a tar is read forward only, up to the member. Raises ValueError for a member
    name with ``..``; DataError (``dest`` not written) for no tar or zip, no such member, not a
    regular file, or a corrupt archive.
    """
    check_member_name(member)
    archive, want = Path(archive), _normalise(member)
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tar:
                for info in tar:
                    if _normalise(info.name) == want:
                        if not info.isfile():
                            raise DataError(
                                f"{archive.name}: member {member} is not a regular file"
                            )
                        return _copy(tar.extractfile(info), dest)
                names = tar.getnames()
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    if _normalise(info.filename) == want and not info.is_dir():
                        return _copy(zipped.open(info), dest)
                names = zipped.namelist()
        else:
            raise DataError(f"{archive.name}: not a tar or zip archive; cannot extract {member}")
    except _ARCHIVE_ERRORS as err:
        raise DataError(f"{archive.name}: cannot extract {member}: {_line(err)}") from None
    # A few names to show: those with the member's file name first.
    similar = [n for n in names if posixpath.basename(n) == posixpath.basename(member)] or names
    shown = ", ".join(similar[:3]) + (" ..." if len(similar) > 3 else "")
    raise DataError(
        f"{archive.name}: no member {member} among {len(names)} entries (e.g. {shown or 'none'})"
    )


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR batches hold (dicts, lists, bytes, numpy arrays): no code runs."""

    _ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                ("numpy", "dtype"), ("_codecs", "encode")}  # fmt: skip

    def find_class(self, module: str, name: str) -> Any:
        module = module.replace("numpy.core.", "numpy._core.")  # pickles written by numpy 1.x
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_cifar(tarball: Path) -> dict[str, dict]:
    """The unpickled CIFAR-10 files of ``tarball`` (``cifar-10-batches-py/<name>``) by name, read
    in one pass over the archive: nothing is extracted to disk."""
    files: dict[str, dict] = {}
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for info in tar:
                folder, name = posixpath.split(_normalise(info.name))
                if folder == "cifar-10-batches-py" and name in _CIFAR_FILES and info.isfile():
                    files[name] = _ArrayUnpickler(tar.extractfile(info), encoding="bytes").load()
    except (*_ARCHIVE_ERRORS, pickle.UnpicklingError, ValueError, AttributeError) as err:
        raise DataError(f"{tarball.name}: unreadable CIFAR-10 archive: {_line(err)}") from None
    missing = [name for name in _CIFAR_FILES if name not in files]
    if missing:
        raise DataError(f"{tarball.name}: {', '.join(missing)} missing from the archive")
    return files


def _read_batches(files: dict, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate CIFAR batches: uint8 [N, 3, 32, 32] and int64 [N]."""
    xs, ys = [], []
    for name in names:
        try:
            x = np.asarray(files[name][b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(files[name][b"labels"], dtype=np.int64).reshape(-1)
        except (KeyError, ValueError, TypeError) as err:
            raise DataError(f"{name}: malformed CIFAR-10 batch: {_line(err)}") from None
        if len(x) != len(y) or (len(y) and not 0 <= y.min() <= y.max() < len(CIFAR10_CLASSES)):
            raise DataError(f"{name}: {len(x)} images but {len(y)} labels or labels outside 0..9")
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def _class_names(files: dict) -> list[str]:
    try:
        names = [name.decode() for name in files["batches.meta"][b"label_names"]]
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
        raise DataError(f"batches.meta: malformed: {_line(err)}") from None
    if len(names) != len(CIFAR10_CLASSES):
        raise DataError(f"batches.meta: {len(names)} class names, expected {len(CIFAR10_CLASSES)}")
    return names


def prepare_cifar10(
    out: Path,
    work_dir: Path,
    url: str = CIFAR10_URL,
    md5: str = CIFAR10_MD5,
    archive: Path | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> None:
    """Fetch and verify CIFAR-10 under ``work_dir`` and write the prepared file ``out`` (format of
    ``robust.data``) atomically, keeping the first ``n_train``/``n_test`` images (None: all).

    Raises DataError on any fetch, checksum, archive or format problem; an archive this call
    downloaded is then removed and ``out`` is not written.
    """
    tarball = Path(work_dir) / "cifar-10-python.tar.gz"
    had_tarball = tarball.exists()
    fetch(url, tarball, md5, archive=archive, progress=progress)
    try:
        files = _read_cifar(tarball)
        x_train, y_train = _read_batches(files, _TRAIN_BATCHES)
        x_test, y_test = _read_batches(files, ["test_batch"])
        names = _class_names(files)
    except DataError as err:
        # A verified but unusable archive would fail the same way next time: leave nothing behind.
        if not had_tarball:
            tarball.unlink(missing_ok=True)
        source = url if archive is None else archive
        raise DataError(f"{err} (archive from {source}, md5 {md5} matched)") from None
    data = {
        "dataset": "cifar10",
        "x_train": x_train[:n_train].clone(),
        "y_train": y_train[:n_train].clone(),
        "x_test": x_test[:n_test].clone(),
        "y_test": y_test[:n_test].clone(),
        "class_names": names,
        "meta": {"url": url, "md5": md5, "local_archive": archive is not None},
    }
    io.torch_save(io.sealed(data), out)
