"""Build the simulated ``libnvidia-ml.so.1`` with cffi's embedding API, cached outside the repository.

The library exports every NVML C symbol (``csource.py``); the simulated ones are implemented in Python
(``exports_*.py``), run by the interpreter of the process that loads the library (``pynvml`` does, via
``CDLL``), or by an interpreter the library starts itself in a non-Python host (Go, C). The build is keyed by
a hash of the generated C and the Python/cffi versions and kept in ``$DRA_DRIVER_CACHE/nvml-sim/<hash>/``
(default ``~/.cache/dra-driver``).

    python -m nvml_sim.build     # prints the directory holding libnvidia-ml.so.1
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import tempfile
from functools import cache
from pathlib import Path

import cffi

from nvml_sim import csource

LIBRARY_NAME = "libnvidia-ml.so.1"
MODULE_NAME = "_dra_nvml_sim"
INIT_CODE = f"""
from {MODULE_NAME} import ffi
from nvml_sim.abi import register
register(ffi)
"""


def cache_root() -> Path:
    return Path(os.environ.get("DRA_DRIVER_CACHE", Path.home() / ".cache" / "dra-driver"))


@cache
def _build_key() -> str:
    h = hashlib.sha256()
    for part in (csource.cdef(), csource.source(sys.base_prefix), INIT_CODE, cffi.__version__, sys.version):
        h.update(part.encode())
    return h.hexdigest()[:16]


def library_dir() -> Path:
    """Directory that holds the built library (built on first use)."""
    out = cache_root() / "nvml-sim" / _build_key()
    lib = out / LIBRARY_NAME
    if lib.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not lib.exists():
            _compile(lib)
    return out


def library_path() -> Path:
    return library_dir() / LIBRARY_NAME


def _compile(target: Path) -> None:
    ffi = cffi.FFI()
    ffi.cdef(csource.cdef())
    ffi.set_source(
        MODULE_NAME,
        csource.source(sys.base_prefix),
        libraries=["dl", "pthread"],
        extra_link_args=[f"-Wl,-soname,{LIBRARY_NAME}"],
    )
    ffi.embedding_init_code(INIT_CODE)
    with tempfile.TemporaryDirectory(prefix="nvml-sim-build-") as tmp:
        built = ffi.compile(tmpdir=tmp, target=LIBRARY_NAME, verbose=False)
        os.replace(built, target)


if __name__ == "__main__":
    print(library_dir())
