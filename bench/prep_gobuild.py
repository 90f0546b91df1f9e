"""Build the Go baseline plugin (``bench/go/kubeletplugin``) into the cache, like the sandbox's binaries.

The binary lives in ``<cache root>/bench-kubeletplugin-<hash>/kubeletplugin`` (cache root: ``$DRA_DRIVER_CACHE``,
default ``~/.cache/dra-driver``); the hash covers the module's go.mod, go.sum and Go files, so an edit builds
afresh and an unchanged module is found at once. The build runs in a copy of the module inside the cache
(``GOFLAGS=-mod=mod``), under an exclusive ``flock``, and the binary is renamed into place, so a reader never
sees half of one. A cold Go build cache compiles client-go and gRPC: 2-4 minutes on 2 cores.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sandbox.binaries import cache_root

MODULE = Path(__file__).resolve().parent / "go" / "kubeletplugin"
NAME = "kubeletplugin"


class GoBuildFailed(RuntimeError):
    """The Go baseline could not be built (no Go, or the build failed); the message says why."""


def module_hash(module: Path = MODULE) -> str:
    digest = hashlib.sha256()
    for path in sorted(module.iterdir()):
        if path.name in ("go.mod", "go.sum") or path.suffix == ".go":
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def binary_path(module: Path = MODULE) -> Path:
    return cache_root() / f"bench-{NAME}-{module_hash(module)}" / NAME


def find_or_build(module: Path = MODULE) -> Path:
    """The built baseline plugin; builds it when the cache has none for this source."""
    target = binary_path(module)
    if target.is_file():
        return target
    go = shutil.which("go")
    if go is None:
        raise GoBuildFailed(f"Go is not installed: it is needed once to build the Go baseline into {target.parent}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits, then finds the binary
        if not target.is_file():
            _build(go, module, target)
    return target


def _build(go: str, module: Path, target: Path) -> None:
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    try:
        src = work / "src"
        shutil.copytree(module, src)
        cmd = [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(work / NAME), "."]
        done = subprocess.run(
            cmd,
            cwd=src,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise GoBuildFailed(f"go build of {module} failed with exit code {done.returncode}:\n{tail}")
        os.replace(work / NAME, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
