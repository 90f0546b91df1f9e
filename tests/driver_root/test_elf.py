"""The ELF reader tells word size and SONAME, as readelf does, and answers None for anything else."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dra_driver.elf import ElfInfo, read_elf
from tests.driver_root.fake_tree import elf


@pytest.mark.parametrize("bits", [64, 32])
def test_the_soname_of_a_64_or_32_bit_library_is_read(tmp_path: Path, bits: int) -> None:
    (tmp_path / "lib.so").write_bytes(elf("libcuda.so.1", bits))
    assert read_elf(tmp_path / "lib.so") == ElfInfo(bits, "libcuda.so.1")


def test_a_library_without_soname_has_none(tmp_path: Path) -> None:
    (tmp_path / "lib.so").write_bytes(elf(None))
    assert read_elf(tmp_path / "lib.so") == ElfInfo(64, None)


@pytest.mark.parametrize("data", [b"", b"#!/bin/sh\n", b"\x7fELF\x09\x01" + bytes(10), elf("libx.so.1")[:90]])
def test_what_is_not_a_well_formed_elf_file_is_none(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "f").write_bytes(data)
    assert read_elf(tmp_path / "f") is None


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs binutils' readelf")
def test_the_fake_library_reads_the_same_with_readelf(tmp_path: Path) -> None:
    """The test helper's ELF files are real enough for binutils: the reader is not only checked against itself."""
    (tmp_path / "lib.so").write_bytes(elf("libnvidia-nvvm.so.4"))
    out = subprocess.run(["readelf", "-d", str(tmp_path / "lib.so")], capture_output=True, text=True, check=True)
    assert "Library soname: [libnvidia-nvvm.so.4]" in out.stdout
