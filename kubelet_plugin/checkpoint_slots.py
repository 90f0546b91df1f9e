"""The checkpoint's slot files: each copy of the document is written in place into one of two files.

A slot holds ``<length> <crc32 hex>\\n`` and the document; whatever follows ``length`` bytes is the tail of a
longer earlier document. A write goes into the slot that does not hold the newest whole document, so a write
cut short (a SIGKILL half-way, or a power loss before a volatile slot reached the disk) fails its CRC and the
other slot still holds the state before it. In place means no temporary file, no rename and, once the file
exists, no directory fsync: a durable slot costs one ``pwrite`` and one ``fsync``, a volatile one a ``pwrite``
(docs/kubelet-plugin.md, "Durable writes"). Not thread-safe: the checkpoint's lock serialises writes.
"""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path

from api.errors import ConfigError
from dra_driver.cdi.atomic import fsync_directory
from kubelet_plugin.checkpoint_json import read_document
from kubelet_plugin.records import Document

log = logging.getLogger(__name__)


def frame(data: bytes) -> bytes:
    return b"%d %08x\n" % (len(data), zlib.crc32(data)) + data


def unframe(raw: bytes) -> bytes:
    """The document in a slot; ValueError when the slot is empty, cut short or not a slot at all."""
    header, newline, rest = raw.partition(b"\n")
    parts = header.split(b" ")
    if not newline or len(parts) != 2:
        raise ValueError("no slot header")
    length, crc = int(parts[0]), int(parts[1], 16)
    if length > len(rest) or zlib.crc32(rest[:length]) != crc:
        raise ValueError("cut short: its length or CRC does not match")
    return rest[:length]


class Slots:
    def __init__(self, prefix: Path, durable: bool) -> None:
        self.durable = durable
        self.paths = (prefix.with_name(prefix.name + "-0"), prefix.with_name(prefix.name + "-1"))
        self._fds: list[int | None] = [None, None]
        self._sizes = [0, 0]
        self._named = [False, False]  # durable: the directory was fsynced since this process opened the slot
        self._newest: int | None = None  # the slot of the newest whole document, once known

    def exist(self) -> list[Path]:
        return [p for p in self.paths if p.exists()]

    def read(self) -> tuple[list[tuple[int, Document]], list[Path]]:
        """The whole documents (with their slot), and the slots that exist but hold none."""
        whole, damaged = [], []
        for slot, path in enumerate(self.paths):
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                whole.append((slot, read_document(unframe(raw))))
            except (ValueError, ConfigError) as e:
                log.info("passing over checkpoint slot %s (%s): a write was cut short", path, e)
                damaged.append(path)
        return whole, damaged

    def write(self, data: bytes) -> None:
        if self._newest is None:
            whole, _ = self.read()
            self._newest = max(whole, key=lambda sd: sd[1].generation)[0] if whole else 1
        slot = 1 - self._newest
        fd = self._fds[slot]
        if fd is None:
            fd = os.open(self.paths[slot], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fds[slot], self._sizes[slot] = fd, os.fstat(fd).st_size
        framed = frame(data)
        if os.pwrite(fd, framed, 0) != len(framed):
            raise OSError(f"short write to {self.paths[slot]}")
        if len(framed) < self._sizes[slot]:
            os.ftruncate(fd, len(framed))
        self._sizes[slot] = len(framed)
        if self.durable:
            os.fsync(fd)
            if not self._named[slot]:  # its name must survive a power loss too (an earlier process may have
                fsync_directory(self.paths[slot].parent)  # died before): once per slot and process
                self._named[slot] = True
        self._newest = slot

    def close(self) -> None:
        for i, fd in enumerate(self._fds):
            if fd is not None:
                os.close(fd)
                self._fds[i] = None
