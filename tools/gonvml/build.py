"""Build ``gonvml`` (this directory's Go program on NVIDIA's go-nvml) into the cache, once per source.

    python -m tools.gonvml.build      # prints the binary's path

The binary is ``$DRA_DRIVER_CACHE/gonvml-<hash>`` (default ``~/.cache/dra-driver``), the hash covering the Go
sources, go.mod, go.sum and the Go version; go-nvml comes from the Go module proxy at the version go.mod pins.
An exclusive ``flock`` keeps two processes from building at once; the binary is renamed into place whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nvml_sim.build import cache_root

SOURCE = Path(__file__).resolve().parent
FILES = ("go.mod", "go.sum", "main.go", "mig.go", "events.go")


class GoUnavailable(RuntimeError):
    """Go is not installed, so gonvml cannot be built."""


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise GoUnavailable("Go is not installed (https://go.dev/dl/): gonvml is built with it")
    return go


def binary_path(go: str) -> Path:
    h = hashlib.sha256()
    for name in FILES:
        h.update(name.encode() + b"\0" + (SOURCE / name).read_bytes())
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout
    h.update(version.encode())
    return cache_root() / f"gonvml-{h.hexdigest()[:16]}"


def build() -> Path:
    """The built binary (built first when missing: about a minute cold, cgo compiles go-nvml)."""
    go = _go()
    target = binary_path(go)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".gonvml.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():
            with tempfile.TemporaryDirectory(prefix="gonvml-", dir=target.parent) as tmp:
                built = Path(tmp) / "gonvml"
                env = {**os.environ, "CGO_ENABLED": "1"}
                done = subprocess.run(
                    [go, "build", "-trimpath", "-o", str(built), "."],
                    cwd=SOURCE,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"building gonvml failed:\n{done.stderr.strip()}")
                os.replace(built, target)
    return target


if __name__ == "__main__":
    try:
        print(build())
    except GoUnavailable as exc:
        sys.exit(str(exc))
