"""Just enough of the ELF format to tell a shared library's word size and ``DT_SONAME``. Reads files only.

The SONAME is the name the dynamic loader looks a library up by (``libcuda.so.1``); ``ldconfig`` and the
NVIDIA Container Toolkit take it from the same place: the ``PT_DYNAMIC`` segment's ``DT_SONAME`` entry, an
offset into the string table that ``DT_STRTAB`` locates by virtual address (mapped to a file offset through
the ``PT_LOAD`` segments). Only the headers, the dynamic segment and the one string are read, so a 100 MB
``libcuda`` costs a few small reads. Anything that is not a well-formed ELF file answers ``None``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"\x7fELF"
PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_STRTAB, DT_SONAME = 0, 5, 14
MAX_DYNAMIC_BYTES = 1 << 20  # a dynamic segment is a few hundred bytes; refuse absurd sizes
MAX_NAME = 4096


@dataclass(frozen=True)
class ElfInfo:
    bits: int  # 32 or 64
    soname: str | None


@dataclass(frozen=True)
class _Layout:
    endian: str  # "<" or ">"
    bits: int

    @property
    def header(self) -> str:  # e_phoff, then e_phentsize / e_phnum, from offset 16
        return self.endian + ("HHIQQQIHHHHHH" if self.bits == 64 else "HHIIIIIHHHHHH")

    @property
    def program_header(self) -> str:  # (p_type, p_offset, p_vaddr, p_filesz) picked out below
        return self.endian + ("IIQQQQQQ" if self.bits == 64 else "IIIIIIII")

    @property
    def dynamic_entry(self) -> str:
        return self.endian + ("qQ" if self.bits == 64 else "iI")


def _read(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated")
    return data


def _segments(f: BinaryIO, layout: _Layout) -> list[tuple[int, int, int, int]]:
    """(type, offset, vaddr, filesz) of every program header."""
    fields = struct.unpack(layout.header, _read(f, 16, struct.calcsize(layout.header)))
    phoff, phentsize, phnum = fields[4], fields[8], fields[9]
    size = struct.calcsize(layout.program_header)
    if phentsize < size:
        raise ValueError("bad program header size")
    out = []
    for i in range(phnum):
        ph = struct.unpack(layout.program_header, _read(f, phoff + i * phentsize, size))
        if layout.bits == 64:  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, ...
            out.append((ph[0], ph[2], ph[3], ph[5]))
        else:  # p_type, p_offset, p_vaddr, p_paddr, p_filesz, ...
            out.append((ph[0], ph[1], ph[2], ph[4]))
    return out


def _file_offset(segments: list[tuple[int, int, int, int]], vaddr: int) -> int:
    for kind, offset, start, filesz in segments:
        if kind == PT_LOAD and start <= vaddr < start + filesz:
            return offset + vaddr - start
    raise ValueError("address outside every loaded segment")


def _soname(f: BinaryIO, layout: _Layout) -> str | None:
    segments = _segments(f, layout)
    dynamic = [(offset, filesz) for kind, offset, _, filesz in segments if kind == PT_DYNAMIC]
    if not dynamic:
        return None
    offset, filesz = dynamic[0]
    if filesz > MAX_DYNAMIC_BYTES:
        raise ValueError("dynamic segment too large")
    entry = struct.calcsize(layout.dynamic_entry)
    raw = _read(f, offset, filesz - filesz % entry)
    tags: dict[int, int] = {}
    for tag, value in struct.iter_unpack(layout.dynamic_entry, raw):
        if tag == DT_NULL:
            break
        tags.setdefault(tag, value)
    if DT_SONAME not in tags or DT_STRTAB not in tags:
        return None
    f.seek(_file_offset(segments, tags[DT_STRTAB]) + tags[DT_SONAME])
    name = f.read(MAX_NAME).split(b"\0", 1)[0]
    return name.decode("utf-8", "replace") or None


def read_elf(path: Path) -> ElfInfo | None:
    """Word size and SONAME of the ELF file at ``path``; None when it is not ELF (or malformed).

    ``OSError`` (missing, unreadable) is the caller's to handle."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != MAGIC or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            return None
        layout = _Layout("<" if ident[5] == 1 else ">", 32 if ident[4] == 1 else 64)
        try:
            return ElfInfo(layout.bits, _soname(f, layout))
        except (ValueError, struct.error, OverflowError):
            return None
