"""A simulated NVIDIA driver installation: a driver root laid out like a real one, for the sandbox and tests.

``install(root, driver_version, nvml_library)`` creates what the driver's installer leaves on an Ubuntu host
(``<triple>`` is ``x86_64-linux-gnu`` on x86-64)::

    usr/lib/<triple>/libnvidia-ml.so.<version>   a copy of the simulated NVML (python -m nvml_sim.build)
                     libnvidia-ml.so.1 -> libnvidia-ml.so.<version>,  libnvidia-ml.so -> libnvidia-ml.so.1
                     libcuda.so.<version>        a stand-in (SONAME libcuda.so.1): cuInit answers CUDA_ERROR_NO_DEVICE
                     libcuda.so.1 -> libcuda.so.<version>,  libcuda.so -> libcuda.so.1
                     libnvidia-{allocator,cfg,nvvm,ptxjitcompiler}.so.<version> + their SONAME links: stand-ins
    usr/bin/nvidia-smi, nvidia-cuda-mps-control, nvidia-cuda-mps-server   stand-in programs (driver_standins.py)
    lib/firmware/nvidia/<version>/gsp_ga10x.bin                          a stand-in firmware file

The stand-in programs are Python scripts run by the installing interpreter. They record every invocation as a
JSON line in ``<root>/../driver-calls.jsonl`` (``calls_log``), keep the time-slice intervals ``nvidia-smi
compute-policy`` sets, ``nvidia-smi --gpu-reset`` resets GPUs of the simulated machine (its state file), and
``nvidia-cuda-mps-control -d`` starts a real background "daemon" that ``quit`` stops; ``driver_standins.py``
says exactly what each does.

The driver version must be the one the simulated NVML reports for the machine (its state file's
``driverVersion``, from the machine profile), as a real driver's libraries carry the kernel driver's version.
The stand-in libraries are real ELF shared objects with the real SONAMEs, built once with the C compiler
(``$CC``, default ``cc``) and cached next to the NVML build (``<cache>/nvml-sim/driver-standins/<hash>/``).

Idempotent: files are replaced only when their content differs, atomically (a process that has a library
mapped keeps the old one), and links are re-pointed, so installing another version over a root leaves the old
version's files beside the new ones, as a driver upgrade does.

    python -m nvml_sim.driver_install ROOT [DRIVER_VERSION]    # prints ROOT
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from nvml_sim.build import cache_root, library_path
from nvml_sim.hardware import MachineProfile, gpu_models

LIBRARY_DIR = f"usr/lib/{platform.machine()}-linux-gnu"

CUDA_SOURCE = """\
/* libcuda.so.1 stand-in of the dra-driver sandbox's simulated driver installation. It is a real shared object
   with the real SONAME, so loaders and CDI mounts treat it as the driver's, but no GPU is reachable through it:
   every entry point answers CUDA_ERROR_NO_DEVICE. */
#define CUDA_ERROR_NO_DEVICE 100
int cuInit(unsigned int flags) { (void)flags; return CUDA_ERROR_NO_DEVICE; }
int cuDriverGetVersion(int *version) { (void)version; return CUDA_ERROR_NO_DEVICE; }
int cuDeviceGetCount(int *count) { if (count) *count = 0; return CUDA_ERROR_NO_DEVICE; }
"""
EMPTY_SOURCE = """\
/* A stand-in library of the dra-driver sandbox's simulated driver installation: the real SONAME, none of the
   real library's functions. */
int dra_sim_standin(void) { return 0; }
"""
# stem -> (SONAME, C source); the SONAMEs are those of NVIDIA's 580 driver
STANDINS = {
    "libcuda": ("libcuda.so.1", CUDA_SOURCE),
    "libnvidia-allocator": ("libnvidia-allocator.so.1", EMPTY_SOURCE),
    "libnvidia-cfg": ("libnvidia-cfg.so.1", EMPTY_SOURCE),
    "libnvidia-nvvm": ("libnvidia-nvvm.so.4", EMPTY_SOURCE),
    "libnvidia-ptxjitcompiler": ("libnvidia-ptxjitcompiler.so.1", EMPTY_SOURCE),
}
BINARIES = ("nvidia-smi", "nvidia-cuda-mps-control", "nvidia-cuda-mps-server")
FIRMWARE = ("gsp_ga10x.bin",)
STANDIN_SOURCE = Path(__file__).with_name("driver_standins.py")  # the stand-in programs (stdlib-only Python)
CALLS_LOG = "driver-calls.jsonl"  # next to the driver root: every stand-in invocation (driver_standins.py)


def calls_log(root: Path) -> Path:
    """Where the stand-ins of the driver root ``root`` record their invocations (unless DRA_SIM_DRIVER_CALLS)."""
    return root.parent / CALLS_LOG


def _models() -> dict[str, dict[str, object]]:
    """What ``nvidia-smi -L`` names: each model's product name and its GPU instance profiles' names by ID."""
    return {
        key: {"name": m.product_name, "gi": {str(p.profile_id): p.name for p in m.gi_profiles}}
        for key, m in sorted(gpu_models().items())
    }


def standin_program(name: str, version: str) -> bytes:
    """The stand-in program ``name``: ``driver_standins.py`` run by this interpreter, labelled as a stand-in.

    Its ``#!`` names the interpreter's real file (not a virtual environment's link to it: the programs use only
    the standard library), so the program also runs where only that interpreter and its standard library are
    present (``tools.real_gpu_check`` runs ``nvidia-smi`` in such a root)."""
    source = STANDIN_SOURCE.read_text()
    source = source.replace('DRIVER_VERSION = "unknown"', f'DRIVER_VERSION = "{version}"', 1)
    source = source.replace(
        "MODELS: dict[str, dict[str, object]] = {}", f"MODELS: dict[str, dict[str, object]] = {_models()!r}", 1
    )
    header = (
        f"#!{os.path.realpath(sys.executable)}\n"
        f"# {name}: a STAND-IN of the dra-driver sandbox's simulated driver installation (driver {version}),\n"
        "# not NVIDIA's program: it records what it is asked (nvml_sim/driver_standins.py) and reaches no GPU.\n"
    )
    return (header + source).encode()


def standins_dir() -> Path:
    """Directory holding the stand-in libraries, named by SONAME (built on first use)."""
    key = hashlib.sha256(repr(sorted(STANDINS.items())).encode()).hexdigest()[:16]
    out = cache_root() / "nvml-sim" / "driver-standins" / key
    if all((out / soname).exists() for soname, _ in STANDINS.values()):
        return out
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for soname, source in STANDINS.values():
            if not (out / soname).exists():
                _compile(source, soname, out / soname)
    return out


def _compile(source: str, soname: str, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="driver-standin-") as tmp:
        src, lib = Path(tmp) / "standin.c", Path(tmp) / soname
        src.write_text(source)
        cc = os.environ.get("CC", "cc")
        cmd = [cc, "-shared", "-fPIC", "-O2", f"-Wl,-soname,{soname}", "-o", str(lib), str(src)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"building the {soname} stand-in with {cc} failed: {done.stderr.strip()}")
        os.replace(lib, target)


def _put(path: Path, data: bytes, mode: int) -> None:
    """``path`` holds ``data`` with ``mode``; replaced atomically when it differs."""
    if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
        os.chmod(path, mode)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _link(path: Path, target: str) -> None:
    """``path`` is a symlink to ``target`` (relative); re-pointed atomically when it points elsewhere."""
    if path.is_symlink() and os.readlink(path) == target:
        return
    tmp = path.parent / f".{path.name}.link"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _library(libdir: Path, stem: str, version: str, data: bytes, soname: str) -> None:
    versioned = f"{stem}.so.{version}"
    _put(libdir / versioned, data, 0o755)
    _link(libdir / soname, versioned)
    if stem in ("libcuda", "libnvidia-ml"):
        _link(libdir / f"{stem}.so", soname)  # the development link, as the driver's installer makes it


def install(root: Path, driver_version: str, nvml_library: Path, standins: Path | None = None) -> Path:
    """Lay out a simulated driver installation of ``driver_version`` under ``root``; returns ``root``.

    ``standins``: a directory of already built stand-in libraries named by SONAME (an image without a C compiler
    ships them); by default they are built here (``standins_dir``)."""
    if not re.fullmatch(r"\d+(?:\.\d+)+", driver_version):
        raise ValueError(f"driver version {driver_version!r} is not like 580.95.05")
    libdir = root / LIBRARY_DIR
    bindir = root / "usr" / "bin"
    firmware = root / "lib" / "firmware" / "nvidia" / driver_version
    for d in (libdir, bindir, firmware):
        d.mkdir(parents=True, exist_ok=True)
    _library(libdir, "libnvidia-ml", driver_version, nvml_library.read_bytes(), "libnvidia-ml.so.1")
    built = standins if standins is not None else standins_dir()
    missing = [soname for soname, _ in STANDINS.values() if not (built / soname).is_file()]
    if missing:
        raise FileNotFoundError(f"the stand-in libraries directory {built} lacks {', '.join(sorted(missing))}")
    for stem, (soname, _) in sorted(STANDINS.items()):
        _library(libdir, stem, driver_version, (built / soname).read_bytes(), soname)
    for name in BINARIES:
        _put(bindir / name, standin_program(name, driver_version), 0o755)
    for name in FIRMWARE:
        _put(firmware / name, f"GSP firmware stand-in, driver {driver_version}\n".encode(), 0o644)
    return root


if __name__ == "__main__":
    if not 2 <= len(sys.argv) <= 3:
        sys.exit("usage: python -m nvml_sim.driver_install ROOT [DRIVER_VERSION]")
    version = sys.argv[2] if len(sys.argv) == 3 else MachineProfile("", "", ()).driver_version
    print(install(Path(sys.argv[1]), version, library_path()))
