"""The Go allocator baseline (``bench/go/allocator``), built into the cache on first use.

The binary lives in ``<cache>/bench-allocator-<digest>/allocator``, where ``<cache>`` is the sandbox's cache
root (``$DRA_DRIVER_CACHE``, default ``~/.cache/dra-driver``) and ``<digest>`` hashes the module's files and
the Go version, so editing the Go program or its go.mod builds it again. As in ``sandbox.gobuild``, the module
is copied into a temporary directory inside the cache and built there (``GOFLAGS=-mod=mod``), the binary is
renamed into place (a reader never sees half of it), and an exclusive ``flock`` keeps two benches from
building at once. Modules come from ``GOPROXY`` (the Go module proxy by default); the first build compiles
~300 packages (about 4 min on 2 cores, seconds with a warm Go build cache).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from sandbox.binaries import cache_root

MODULE = Path(__file__).resolve().parent / "go" / "allocator"
BINARY = "allocator"


class GoBuildError(RuntimeError):
    pass


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise GoBuildError(
            "the Go allocator baseline needs Go to build bench/go/allocator (https://go.dev/dl/); "
            "run the bench with --no-go to time only ours"
        )
    return go


def digest(go: str, module: Path = MODULE) -> str:
    """What the binary is built from: the module's files and ``go version``."""
    h = hashlib.sha256()
    h.update(subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.encode())
    for path in sorted(p for p in module.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(module)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def binary(progress: Callable[[str], None] = lambda _: None) -> Path:
    """The built baseline; builds it first when the cache has none for the current sources."""
    go = _go()
    dest = cache_root() / f"bench-allocator-{digest(go)}"
    target = dest / BINARY
    if target.is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second bench waits here, then finds the binary
        if not target.is_file():
            _build(go, dest, target, progress)
    return target


def _build(go: str, dest: Path, target: Path, progress: Callable[[str], None]) -> None:
    progress(f"building the Go allocator baseline into {dest} (first run: a few minutes on 2 cores)")
    work = Path(tempfile.mkdtemp(dir=dest, prefix=".build-"))
    log = dest / "build.log"
    try:
        src = work / "src"
        shutil.copytree(MODULE, src)
        out = work / BINARY
        with open(log, "w") as sink:
            code = subprocess.run(
                [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), "."],
                cwd=src,
                env={**os.environ, "GOFLAGS": "-mod=mod"},
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            ).returncode
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise GoBuildError(f"go build of {MODULE} failed with exit code {code}; full output in {log}:\n{tail}")
        os.replace(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
