"""A download cache shared by concurrent jobs, and the extraction of one member of an archive.

Several pretrained checkpoints can come from one archive (Cohen et al. release all their models in
one file), so downloads are cached in one folder under a name derived from the URL and shared by
every job that needs them: the first job downloads while the others wait on a lock file, then each
reuses the finished file. Downloads are atomic (temporary file, then rename), so a killed job never
leaves a partial file under the cached name.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import posixpath
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from robust import io
from robust.download import DataError, digest_of, fetch

_BLOCK = 1 << 20
_HTML_PREFIXES = (b"<!doctype html", b"<html")


def cache_path(cache_dir: Path, url: str) -> Path:
    """Where the download of ``url`` is kept: ``cache_dir/<16 hex of sha256(url)>.download``."""
    return Path(cache_dir) / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.download"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path.lock`` (blocks while another process holds it)."""
    with open(path.with_suffix(".lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip().lower()
    return head.startswith(_HTML_PREFIXES)


def cached_fetch(
    url: str, cache_dir: Path, sha256: str | None, timeout: float = 60.0
) -> tuple[Path, str]:
    """A local copy of ``url`` from the cache, downloading it first if needed.

    Args:
        url: http(s) or file URL, or a local path.
        cache_dir: the shared cache folder (created if missing).
        sha256: expected hex digest, or None (unpinned: a cached copy is reused as it is and a
            fresh download is accepted whatever its digest).
        timeout: seconds before an unreachable host fails.

    Returns:
        (path of the cached file, its hex sha256).

    Raises:
        DataError: unreachable host, digest mismatch, or a web page instead of a file; no file
            is then left under the cached name.
    """
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"sha256 must be 64 lowercase hex digits or None, got {sha256}")
    dest = cache_path(cache_dir, url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        if dest.is_file():
            actual = digest_of(dest, "sha256")
            if sha256 is None or actual == sha256:
                return dest, actual
            dest.unlink()  # another or a damaged file: download again and check the new copy
        actual = fetch(url, dest, sha256, "sha256", timeout=timeout)
        if sha256 is None and _looks_like_html(dest):
            dest.unlink()
            raise DataError(
                f"{url} sent a web page, not a file (a sign-in or download-confirmation page?); "
                "use a direct-download address"
            )
    return dest, actual


def _normalise(name: str) -> str:
    return posixpath.normpath(name.replace("\\", "/")).lstrip("/")


def check_member_name(member: str) -> None:
    """Raise ValueError unless ``member`` is a relative path inside an archive (no ``..``)."""
    if not member or member.startswith("/") or ".." in member.replace("\\", "/").split("/"):
        raise ValueError(f"archive member '{member}' must be a relative path without '..'")


def _closest(names: list[str], member: str) -> str:
    """A few archive names to show when ``member`` is absent: those with its file name first."""
    base = posixpath.basename(member)
    similar = [n for n in names if posixpath.basename(n) == base] or names
    return ", ".join(similar[:3]) + (" ..." if len(similar) > 3 else "")


def extract_member(archive: Path, member: str, dest: Path) -> Path:
    """Copy one regular file of a tar (any compression) or zip ``archive`` to ``dest``, atomically.

    Only the bytes of ``member`` are written, to ``dest`` itself: no other path is created, so
    absolute names, ``..`` and links inside the archive cannot write anywhere else. A tar is read
    forward only and stops at the member.

    Raises:
        ValueError: ``member`` is not a relative path without ``..``.
        DataError: not a tar or zip archive, no such member, not a regular file, or a corrupt
            archive; ``dest`` is then not written.
    """
    check_member_name(member)
    archive, want, names = Path(archive), _normalise(member), []
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tar:
                for info in tar:
                    if _normalise(info.name) != want:
                        names.append(info.name)
                        continue
                    if not info.isfile():
                        raise DataError(f"{archive.name}: member {member} is not a regular file")
                    with tar.extractfile(info) as src, io.atomic_open(dest, "wb") as target:
                        shutil.copyfileobj(src, target, _BLOCK)
                    return Path(dest)
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    if _normalise(info.filename) != want or info.is_dir():
                        names.append(info.filename)
                        continue
                    with zipped.open(info) as src, io.atomic_open(dest, "wb") as target:
                        shutil.copyfileobj(src, target, _BLOCK)
                    return Path(dest)
        else:
            raise DataError(f"{archive.name}: not a tar or zip archive; cannot extract {member}")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"{archive.name}: cannot extract {member}: {reason}") from None
    raise DataError(
        f"{archive.name}: no member {member} among {len(names)} entries "
        f"(e.g. {_closest(names, member) or 'none'})"
    )
