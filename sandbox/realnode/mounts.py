"""The private file system of one real node, set up inside its own mount namespace. Nothing here reaches the host.

    /run                 tmpfs (containerd's state and socket, pod network namespaces, /var/run/cdi)
    /etc, /var/lib       overlays whose upper layers live in the node's directory
    /var/lib/kubelet     bind of <node>/kubelet     (the kubelet's root: plugins, plugins_registry, pods)
    /var/lib/containerd  bind of <node>/containerd  (ext4: containerd's overlay snapshotter cannot sit on overlay)
    /var/lib/dra-gpu     bind of <node>/state       (the plugin's checkpoint)
    /var/run/cdi         bind of <node>/cdi         (the plugin's CDI specs, read by containerd)
    /var/log             bind of <node>/log         (pod and container logs)
    /dev                 overlay + the driver's device nodes (devices.py), fresh devpts, shm and mqueue
    /proc/driver         tmpfs holding nvidia-caps/mig-minors
    /proc/sys/...        each sysctl the kubelet writes, shadowed by a private file

The host's view of the node's directories is the work directory itself, so tests and ``dra-gpu`` read the
plugin's state, CDI specs and logs there.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from sandbox.realnode import devices

KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
BINDS = (
    ("kubelet", "/var/lib/kubelet"),
    ("containerd", "/var/lib/containerd"),
    ("state", "/var/lib/dra-gpu"),
    ("cni-state", "/var/lib/cni"),
)


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"mount {' '.join(args)}: {done.stderr.strip() or done.returncode}")


def _overlay(target: str, layers: Path) -> None:
    upper, work = layers / "upper", layers / "work"
    upper.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    mount("-t", "overlay", "overlay", "-o", f"lowerdir={target},upperdir={upper},workdir={work}", target)


def _bind(source: Path, target: str) -> None:
    source.mkdir(parents=True, exist_ok=True)
    Path(target).mkdir(parents=True, exist_ok=True)
    mount("--bind", str(source), target)


def setup(node_dir: Path, gpu_minors: Sequence[int]) -> None:
    """Build the node's file system; call once, first thing, in a fresh private mount namespace."""
    mount("--make-rprivate", "/")
    layers = node_dir / "layers"
    mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    _overlay("/etc", layers / "etc")
    _overlay("/var/lib", layers / "var-lib")
    for name, target in BINDS:
        _bind(node_dir / name, target)
    _bind(node_dir / "log", "/var/log")
    _bind(node_dir / "cdi", "/var/run/cdi")
    _overlay("/dev", layers / "dev")
    mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620", "devpts", "/dev/pts")
    mount("-t", "tmpfs", "-o", "mode=1777", "shm", "/dev/shm")
    Path("/dev/mqueue").mkdir(exist_ok=True)
    mount("-t", "mqueue", "mqueue", "/dev/mqueue")
    devices.create_device_nodes(Path("/dev"), list(gpu_minors), Path("/proc/devices").read_text())
    mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", "/proc/driver")
    caps = Path("/proc/driver/nvidia-caps")
    caps.mkdir()
    (caps / "mig-minors").write_text(devices.mig_minors_text(gpu_minors))
    shadows = node_dir / "sysctl"
    shadows.mkdir(exist_ok=True)
    for key in KUBELET_SYSCTLS:
        real = Path("/proc/sys") / key
        if real.exists():
            shadow = shadows / key.replace("/", ".")
            shadow.write_text(real.read_text())
            mount("--bind", str(shadow), str(real))
