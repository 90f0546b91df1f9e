"""Fake driver roots for discovery tests: minimal ELF shared objects with a SONAME, symlinks, plain files."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from dra_driver.driver_root import LIBRARY_DIRS

LIBDIR = LIBRARY_DIRS[0]  # usr/lib/<this machine's triple>
VERSION = "580.95.05"
PT_LOAD, PT_DYNAMIC, DT_STRTAB, DT_STRSZ, DT_SONAME = 1, 2, 5, 10, 14
DYNAMIC_ENTRIES = 4


def elf(soname: str | None, bits: int = 64) -> bytes:
    """The smallest ELF shared object ``dra_driver.elf`` (and readelf) reads: one PT_LOAD mapping the whole file at
    address 0 and a PT_DYNAMIC holding DT_STRTAB, DT_STRSZ, DT_SONAME (when given) and DT_NULL."""
    wide = bits == 64
    ehsize, phentsize, dynsize = (64, 56, 16) if wide else (52, 32, 8)
    strtab = b"\0" + (soname or "").encode() + b"\0"
    dyn_off = ehsize + 2 * phentsize
    dyn_bytes = DYNAMIC_ENTRIES * dynsize
    str_off = dyn_off + dyn_bytes
    total = str_off + len(strtab)
    entries = [(DT_STRTAB, str_off), (DT_STRSZ, len(strtab))] + ([(DT_SONAME, 1)] if soname else [])
    entries += [(0, 0)] * (DYNAMIC_ENTRIES - len(entries))
    if wide:
        header = struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, ehsize, 0, 0, ehsize, phentsize, 2, 64, 0, 0)
        load = struct.pack("<IIQQQQQQ", PT_LOAD, 5, 0, 0, 0, total, total, 0x1000)
        dynamic = struct.pack("<IIQQQQQQ", PT_DYNAMIC, 6, dyn_off, dyn_off, dyn_off, dyn_bytes, dyn_bytes, 8)
        table = b"".join(struct.pack("<qQ", tag, value) for tag, value in entries)
    else:
        header = struct.pack("<HHIIIIIHHHHHH", 3, 3, 1, 0, ehsize, 0, 0, ehsize, phentsize, 2, 40, 0, 0)
        load = struct.pack("<IIIIIIII", PT_LOAD, 0, 0, 0, total, total, 5, 0x1000)
        dynamic = struct.pack("<IIIIIIII", PT_DYNAMIC, dyn_off, dyn_off, dyn_off, dyn_bytes, dyn_bytes, 6, 4)
        table = b"".join(struct.pack("<iI", tag, value) for tag, value in entries)
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1, 1]) + bytes(9)
    return ident + header + load + dynamic + table + strtab


def put(root: Path, path: str, data: bytes = b"x") -> Path:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def link(root: Path, path: str, target: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, root / path)


def library(root: Path, stem: str, soname: str, version: str = VERSION, libdir: str = LIBDIR, bits: int = 64) -> None:
    """``<stem>.so.<version>`` (an ELF file with ``soname``) and the ``soname`` link to it, as ldconfig makes."""
    put(root, f"{libdir}/{stem}.so.{version}", elf(soname, bits))
    if soname != f"{stem}.so.{version}":
        (root / libdir / soname).unlink(missing_ok=True)
        link(root, f"{libdir}/{soname}", f"{stem}.so.{version}")


def driver(root: Path, version: str = VERSION, libdir: str = LIBDIR) -> Path:
    """The two required libraries of ``version``."""
    library(root, "libnvidia-ml", "libnvidia-ml.so.1", version, libdir)
    library(root, "libcuda", "libcuda.so.1", version, libdir)
    return root
