"""Run one program with only a CDI spec's edits applied: a private mount namespace, a minimal root, ``chroot``.

Part of ``tools.real_gpu_check`` (read-only). The root is a tmpfs mounted inside a new mount (and PID) namespace
made with util-linux ``unshare``, so it and every mount in it vanish with the process; nothing is mounted or
created on the host outside the work directory's empty mount point. What the root holds, each entry labelled:

- ``image``: what a container image would bring: a static busybox (``/bin/busybox``, the shell and ``env``),
  ``/dev/null``, ``/dev/zero``, ``/dev/urandom``, ``/proc`` (new) and ``/sys`` (read-only), and the program's own
  runtime that is not NVIDIA's: the dynamic loader and C libraries ``ldd`` names (every ``libnvidia-*`` and
  ``libcuda*`` left out: those come from the spec or not at all); for a ``#!`` script (the simulated driver's
  stand-ins) its interpreter and, for Python, the standard library;
- ``cdi-mount`` / ``cdi-device``: every mount and device node of the spec, as the container runtime applies them
  (bind mounts, read-only where the spec says ``ro``; device nodes bound from ``--dev-root``);
- ``simulation``: only with ``--simulated``: the simulated machine's state file, the stand-in of the kernel
  driver's view.

The environment is exactly the spec's variables plus the ``PATH`` of NVIDIA's CUDA images.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dra_driver.cdi import ContainerEdits, Spec

BUSYBOX = Path("/bin/busybox")
IMAGE_PATH = "/usr/local/nvidia/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom")
COMMANDS = ("unshare", "mount", "chroot", "ldd")
RUN_TIMEOUT_S = 120.0
_NVIDIA_LIBRARY = re.compile(r"lib(nvidia-|cuda)")


class RootError(Exception):
    """The namespace cannot be built here (a missing command, file or privilege); the message says which."""


@dataclass(frozen=True)
class Bind:
    source: str  # host path
    target: str  # path in the root
    read_only: bool
    kind: str  # image | cdi-mount | cdi-device | simulation


@dataclass(frozen=True)
class Ran:
    argv: tuple[str, ...]
    env: tuple[str, ...]
    binds: tuple[Bind, ...]
    returncode: int
    output: str


def spec_edits(spec: Spec, device: str) -> ContainerEdits:
    """The spec's edits for one of its devices (the spec-wide ones first), as a runtime merges them."""
    dev = next((d for d in spec.devices if d.name == device), None)
    if dev is None:
        raise RootError(f"the spec has no device {device!r}")
    common, own = spec.container_edits, dev.container_edits
    return ContainerEdits(
        env=(*common.env, *own.env),
        device_nodes=(*common.device_nodes, *own.device_nodes),
        mounts=(*common.mounts, *own.mounts),
    )


def spec_binds(edits: ContainerEdits, dev_root: Path) -> list[Bind]:
    """The spec's mounts and device nodes as binds (device nodes from ``dev_root``, the host's ``/dev``)."""
    if edits.hooks:
        raise RootError(f"the spec has hooks ({[h.path for h in edits.hooks]}), which this check cannot run")
    binds = []
    for node in edits.device_nodes:
        host = node.host_path or node.path
        binds.append(Bind(str(dev_root / os.path.relpath(host, "/dev")), node.path, False, "cdi-device"))
    for m in edits.mounts:
        if not {"bind", "rbind"} & set(m.options):
            raise RootError(f"mount {m.container_path}: type {m.type} with {m.options} is not a bind mount")
        binds.append(Bind(m.host_path, m.container_path, "ro" in m.options, "cdi-mount"))
    return binds


def missing_sources(binds: Iterable[Bind]) -> list[str]:
    return [f"{b.source} (for {b.target}, {b.kind})" for b in binds if not os.path.lexists(b.source)]


def _ldd(program: str) -> list[str]:
    """The loader and libraries ``ldd`` names for ``program``, NVIDIA's left out; [] for a static one."""
    done = subprocess.run(["ldd", program], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        if "not a dynamic executable" in done.stdout + done.stderr:
            return []
        raise RootError(f"ldd {program} failed: {(done.stdout + done.stderr).strip()[-300:]}")
    found = []
    for line in done.stdout.splitlines():
        words = line.split()
        path = words[2] if len(words) >= 3 and words[1] == "=>" else words[0] if words else ""
        if path.startswith("/") and not _NVIDIA_LIBRARY.match(os.path.basename(path)):
            found.append(path)
    return found


def _python_library(interpreter: str) -> list[str]:
    code = "import sysconfig; print(sysconfig.get_path('stdlib')); print(sysconfig.get_path('platstdlib'))"
    done = subprocess.run([interpreter, "-I", "-c", code], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RootError(f"{interpreter} did not name its standard library: {done.stderr.strip()[-300:]}")
    dirs = sorted(set(done.stdout.split()))
    return [d for d in dirs if not any(d != o and d.startswith(o + "/") for o in dirs)]


def image_binds(program: str) -> list[Bind]:
    """The program's own runtime (see the module docstring); ``program`` is its host file."""
    with open(program, "rb") as f:
        head = f.read(256)
    binds: list[Bind] = []
    if head.startswith(b"#!"):
        interpreter = head[2:].split(b"\n", 1)[0].split()[0].decode()
        binds.append(Bind(os.path.realpath(interpreter), interpreter, True, "image"))
        binds += [Bind(os.path.realpath(p), p, True, "image") for p in _ldd(interpreter)]
        if os.path.basename(interpreter).startswith("python"):
            binds += [Bind(d, d, True, "image") for d in _python_library(interpreter)]
        return binds
    return [Bind(os.path.realpath(p), p, True, "image") for p in _ldd(program)]


def base_binds() -> list[Bind]:
    if not BUSYBOX.is_file():
        raise RootError(f"{BUSYBOX} not found: install busybox-static (the minimal root's shell)")
    return [Bind(str(BUSYBOX), "/bin/busybox", True, "image")] + [Bind(d, d, False, "image") for d in IMAGE_DEVICES]


def _script(root: str, binds: list[Bind], argv: list[str], env: list[str]) -> str:
    q = shlex.quote
    lines = [
        "set -eu",
        "mount --make-rprivate /",
        f"mount -t tmpfs -o mode=0755 dra-gpu-check {q(root)}",
        f"mkdir -p {q(root)}/dev {q(root)}/proc {q(root)}/sys {q(root)}/tmp {q(root)}/bin",
        f"mount -t tmpfs -o mode=0755,nosuid dev {q(root)}/dev",
        f"mount -t proc -o nosuid,nodev,noexec proc {q(root)}/proc",
        f"mount --rbind /sys {q(root)}/sys && mount -o remount,bind,ro {q(root)}/sys",
        f"ln -s busybox {q(root)}/bin/sh",
    ]
    for b in binds:
        target = f"{root}{b.target}"
        make = "mkdir -p" if os.path.isdir(b.source) else "touch"
        lines.append(f"mkdir -p {q(os.path.dirname(target))} && {make} {q(target)}")
        lines.append(f"mount --bind {q(b.source)} {q(target)}")
        if b.read_only:
            lines.append(f"mount -o remount,bind,ro,nosuid,nodev {q(target)}")
    command = " ".join(q(a) for a in ["/bin/busybox", "env", "-i", *env, *argv])
    lines.append(f"exec chroot {q(root)} {command}")
    return "\n".join(lines) + "\n"


def run_in_root(binds: list[Bind], env: list[str], argv: list[str], work_dir: Path | None = None) -> Ran:
    """Run ``argv`` in the root made of ``binds`` with exactly ``env``; its exit code and output."""
    if os.geteuid() != 0:
        raise RootError("the check needs root: it makes a private mount namespace and mounts the spec's files")
    absent = [c for c in COMMANDS if shutil.which(c) is None]
    if absent:
        raise RootError(f"commands not found: {', '.join(absent)} (util-linux, mount, coreutils, libc-bin)")
    with tempfile.TemporaryDirectory(prefix="dra-gpu-check-", dir=work_dir) as tmp:
        root = str(Path(tmp) / "root")
        os.mkdir(root)
        script = _script(root, binds, argv, env)
        done = subprocess.run(
            ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    return Ran(tuple(argv), tuple(env), tuple(binds), done.returncode, done.stdout + done.stderr)
