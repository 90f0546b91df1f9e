"""Crash-safe file replacement: readers see the old file or the new one, never a part of either.

``write_atomically`` writes a temporary file in the target's directory, fsyncs it, renames it over the
target and fsyncs the directory, so the rename itself survives a power loss. With ``durable=False`` it skips
both fsyncs: other processes still see the old file or the new one, and a killed writer leaves either, but a
power loss or kernel crash may lose the change or leave the target unreadable; only for files whose loss
the reader can recognise and survive (see docs/kubelet-plugin.md, "Durable writes"). Temporary files are named
``.<target name>.<random>.tmp``: hidden, and with an extension no CDI runtime loads. A crash (kill -9)
can leave one behind; ``stale_temp_files`` finds them for start-up repair. Errors are ``OSError``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (and, ``durable``, durably); on any failure the old content stays."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    fill_and_replace(fd, Path(tmp), path, data, mode, durable)


def fill_and_replace(fd: int, tmp: Path, path: Path, data: bytes, mode: int, durable: bool) -> None:
    """Write ``data`` into ``tmp`` (open as ``fd``, which this closes) from its start, cutting anything past it,
    and rename ``tmp`` over ``path`` in the same directory; on any failure ``tmp`` is removed and ``path`` keeps
    its old content. ``durable``: the file and then its directory are fsynced."""
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.pwrite(fd, view, len(data) - len(view)) :]
            os.ftruncate(fd, len(data))
            os.fchmod(fd, mode)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_directory(path.parent)


def remove_durably(path: Path, durable: bool = True) -> bool:
    """Remove ``path`` and (``durable``) fsync its directory; False when it was already gone (idempotent)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    if durable:
        fsync_directory(path.parent)
    return True


def stale_temp_files(directory: Path, name_prefix: str = "") -> list[Path]:
    """Temporary files a crashed ``write_atomically`` left for targets whose name starts with ``name_prefix``."""
    if not directory.is_dir():
        return []
    return sorted(
        p for p in directory.iterdir() if p.name.startswith(f".{name_prefix}") and p.name.endswith(TEMP_SUFFIX)
    )
