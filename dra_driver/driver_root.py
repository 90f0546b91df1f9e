"""The NVIDIA driver's user-space files under a driver root: what a container needs for CUDA and NVML. Reads files.

A *driver root* is the directory the driver is installed under: the host's ``/``, a driver container's root
(``/run/nvidia/driver``), or where either is mounted in the plugin's container (``/driver-root``). Paths are
kept *within* the root (``/usr/lib/x86_64-linux-gnu/libcuda.so.580.95.05``); ``DriverFiles.local`` is where the
plugin reads a file, ``DriverFiles.host`` where the container runtime (on the host) finds it.

What is looked for is what the NVIDIA Container Toolkit injects for the ``compute`` and ``utility`` driver
capabilities, as listed in libnvidia-container ``src/nvc_info.c`` (``utility_libs``, ``compute_libs``,
``utility_bins``, ``compute_bins``) and ``src/nvc_internal.h`` (``NV_FIRMWARE_PATH`` + ``NV_FIRMWARE_GLOB``):

- libraries ``<name>.so.<driver version>`` in the conventional library directories (``LIBRARY_DIRS``, first
  match wins; 32-bit ELF files are skipped), each with its SONAME read from the file (``dra_driver.elf``);
- binaries in ``usr/bin`` or ``bin`` (the MPS ones, nvidia-smi, ...; ``nv-fabricmanager`` is a host service and
  is left out, as ``nvidia-ctk cdi generate`` does);
- GSP firmware ``lib/firmware/nvidia/<driver version>/gsp*.bin``, where present.

Every symlink is resolved *inside* the root (an absolute link target is taken relative to the root, ``..``
stops at it), so a mount source is always the real file. ``libnvidia-ml`` and ``libcuda`` are required: without
them ``discover_driver_files`` raises ``ConfigError`` naming the root, the missing files and the flag to fix;
everything else is optional and simply absent.

The version: the one given (the driver version NVML reports), else the one ``libnvidia-ml.so.1`` points at (what
NVML will load, kept current by ``ldconfig``), else the newest version any ``libnvidia-ml``/``libcuda`` file has.
"""

from __future__ import annotations

import fnmatch
import os
import platform
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dra_driver.elf import read_elf
from dra_driver.errors import ConfigError

_TRIPLE = f"{platform.machine()}-linux-gnu"
LIBRARY_DIRS = (f"usr/lib/{_TRIPLE}", "usr/lib64", "usr/lib", f"lib/{_TRIPLE}", "lib64", "lib")
BINARY_DIRS = ("usr/bin", "bin")
FIRMWARE_DIR = "lib/firmware/nvidia/{version}"
FIRMWARE_GLOB = "gsp*.bin"
REQUIRED = ("libnvidia-ml", "libcuda")
UTILITY_LIBRARIES = ("libnvidia-ml", "libnvidia-cfg", "libnvidia-nscq")
COMPUTE_LIBRARIES = (
    "libcuda",
    "libcudadebugger",
    "libnvidia-opencl",
    "libnvidia-gpucomp",
    "libnvidia-ptxjitcompiler",
    "libnvidia-fatbinaryloader",  # drivers before 450
    "libnvidia-allocator",
    "libnvidia-compiler",  # drivers before 525
    "libnvidia-pkcs11",
    "libnvidia-pkcs11-openssl3",
    "libnvidia-nvvm",
    "libnvidia-tileiras",
)
LIBRARIES = UTILITY_LIBRARIES + COMPUTE_LIBRARIES
BINARIES = (
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
)
MAX_SYMLINKS = 40  # as the kernel's ELOOP limit
_VERSION = re.compile(r"\d+(?:\.\d+)+")


@dataclass(frozen=True)
class DriverFile:
    path: str  # where it was found, absolute within the root: "/usr/lib/x86_64-linux-gnu/libcuda.so.1"
    real: str  # the same with every symlink resolved inside the root: the mount source


@dataclass(frozen=True)
class DriverLibrary:
    stem: str  # "libcuda"
    name: str  # the versioned file name: "libcuda.so.580.95.05"
    soname: str | None  # "libcuda.so.1" (DT_SONAME; else a sibling <stem>.so.<N> link to it; else None)
    file: DriverFile


@dataclass(frozen=True)
class DriverFiles:
    root: Path  # where the plugin reads the driver root
    host_root: str  # where the container runtime finds the same directory
    version: str
    libraries: tuple[DriverLibrary, ...]  # sorted by stem
    binaries: tuple[tuple[str, DriverFile], ...]  # (name, file), sorted
    firmware: tuple[DriverFile, ...]  # sorted; ``path`` is where the driver expects it

    def local(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def host(self, path: str) -> str:
        return f"{self.host_root.rstrip('/')}{path}"

    def library(self, stem: str) -> DriverLibrary | None:
        return next((lib for lib in self.libraries if lib.stem == stem), None)

    @property
    def nvml_library(self) -> Path:
        """The real ``libnvidia-ml.so.<version>`` as the plugin reads it (load it to use this driver's NVML)."""
        lib = self.library("libnvidia-ml")
        assert lib is not None, "discover_driver_files guarantees libnvidia-ml"
        return self.local(lib.file.real)


def resolve(root: Path, path: str) -> str | None:
    """``path`` (absolute within ``root``) with every symlink resolved inside ``root``; None when it does not exist."""
    pending = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        try:
            mode = os.lstat(root.joinpath(*done, part)).st_mode
            target = os.readlink(root.joinpath(*done, part)) if stat.S_ISLNK(mode) else None
        except OSError:  # missing, a file where a directory should be, unreadable
            return None
        if target is not None:
            links += 1
            if links > MAX_SYMLINKS:
                return None
            if target.startswith("/"):
                done = []
            pending = [p for p in target.split("/") if p] + pending
            continue
        done.append(part)
    return "/" + "/".join(done)


def _found(root: Path, path: str, kind: int = stat.S_IFREG) -> DriverFile | None:
    real = resolve(root, path)
    if real is None:
        return None
    try:
        ok = stat.S_IFMT(os.stat(root / real.lstrip("/")).st_mode) == kind
    except OSError:
        return None
    return DriverFile(path, real) if ok else None


def library_dirs(root: Path) -> list[str]:
    """The conventional library directories present under ``root``, resolved, in ``LIBRARY_DIRS`` order, each
    once (on merged-/usr systems ``lib`` is ``usr/lib``)."""
    found = (_found(root, f"/{d}", stat.S_IFDIR) for d in LIBRARY_DIRS)
    return list(dict.fromkeys(f.real for f in found if f is not None))


def _listing(root: Path, directory: str) -> list[str]:
    try:
        return sorted(os.listdir(root / directory.lstrip("/")))
    except OSError:
        return []


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def pick_version(root: Path, dirs: list[str]) -> str | None:
    """The version ``libnvidia-ml.so.1`` points at; else the newest of every ``libnvidia-ml``/``libcuda`` file."""
    for d in dirs:
        found = _found(root, f"{d}/libnvidia-ml.so.1")
        if found is not None:
            suffix = PurePosixPath(found.real).name.removeprefix("libnvidia-ml.so.")
            if _VERSION.fullmatch(suffix):
                return suffix
    versions = {
        m.group(2)
        for d in dirs
        for name in _listing(root, d)
        if (m := re.fullmatch(r"(libnvidia-ml|libcuda)\.so\.(\d+(?:\.\d+)+)", name))
    }
    return max(versions, key=_version_key) if versions else None


def _soname(root: Path, directory: str, stem: str, file: DriverFile) -> tuple[int, str | None]:
    """(ELF word size or 0, SONAME): from the ELF file; else a ``<stem>.so.<N>`` link beside it that resolves to it."""
    info = read_elf(root / file.real.lstrip("/"))
    if info is not None and info.soname:
        return info.bits, info.soname
    pattern = re.compile(re.escape(stem) + r"\.so\.\d+")
    for name in _listing(root, directory):
        if pattern.fullmatch(name) and resolve(root, f"{directory}/{name}") == file.real:
            return (info.bits if info else 0), name
    return (info.bits if info else 0), None


def _library(root: Path, dirs: list[str], stem: str, version: str) -> DriverLibrary | None:
    name = f"{stem}.so.{version}"
    for d in dirs:
        file = _found(root, f"{d}/{name}")
        if file is None:
            continue
        bits, soname = _soname(root, d, stem, file)
        if bits == 32:  # a 32-bit compatibility library (usr/lib on RHEL): not for 64-bit containers
            continue
        return DriverLibrary(stem, name, soname, file)
    return None


def _missing_error(root: Path, version: str | None, dirs: list[str], missing: list[str]) -> ConfigError:
    what = ", ".join(f"{stem}.so.{version or 1}" for stem in missing)
    where = f"driver version {version}; " if version else ""
    looked = f"looked in {', '.join(dirs)}" if dirs else f"none of {', '.join(LIBRARY_DIRS)} exists"
    return ConfigError(
        "--driver-root",
        f"no NVIDIA driver under {root}: {what} not found ({where}{looked}); point --driver-root "
        "(env DRIVER_ROOT) at the directory the driver is installed under (the host's / or the driver container's "
        "root, as mounted in the plugin's container)",
    )


def discover_driver_files(root: Path, host_root: str | None = None, version: str | None = None) -> DriverFiles:
    """The driver's files under ``root`` (``host_root``: the same directory as the host sees it; default ``root``).

    ``version``: the driver version to look for (NVML's); default: see the module docstring. Raises ``ConfigError``
    when ``libnvidia-ml`` or ``libcuda`` of that version is missing."""
    dirs = library_dirs(root)
    version = version or pick_version(root, dirs)
    libraries = {stem: _library(root, dirs, stem, version) for stem in LIBRARIES} if version else {}
    missing = [stem for stem in REQUIRED if libraries.get(stem) is None]
    if version is None or missing:
        raise _missing_error(root, version, dirs, missing or list(REQUIRED))
    binaries = []
    for name in BINARIES:
        found = next((f for d in BINARY_DIRS if (f := _found(root, f"/{d}/{name}")) is not None), None)
        if found is not None:
            binaries.append((name, found))
    firmware_dir = "/" + FIRMWARE_DIR.format(version=version)
    real_dir = resolve(root, firmware_dir)
    firmware = [
        f
        for name in (_listing(root, real_dir) if real_dir else [])
        if fnmatch.fnmatchcase(name, FIRMWARE_GLOB) and (f := _found(root, f"{firmware_dir}/{name}")) is not None
    ]
    return DriverFiles(
        root=root,
        host_root=str(root) if host_root is None else host_root,
        version=version,
        libraries=tuple(lib for stem, lib in sorted(libraries.items()) if lib is not None),
        binaries=tuple(sorted(binaries, key=lambda b: b[0])),
        firmware=tuple(sorted(firmware, key=lambda f: f.path)),
    )
