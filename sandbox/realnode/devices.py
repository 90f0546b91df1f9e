"""The NVIDIA driver's device nodes and MIG capability minors for a node's simulated GPUs.

What a real driver creates: ``/dev/nvidia<minor>`` (character major 195) per GPU, ``/dev/nvidiactl``
(195:255), ``/dev/nvidia-uvm`` and ``/dev/nvidia-uvm-tools`` (a dynamic major), and for MIG the
``nvidia-caps`` minors: ``config`` 1, ``monitor`` 2, then 135 per GPU (for each of 15 GPU instances its
``access`` and 8 compute instances), listed in ``/proc/driver/nvidia-caps/mig-minors`` and present as
``/dev/nvidia-caps/nvidia-cap<N>``. The dynamic majors are picked among those the host's kernel does not use,
so the nodes can never reach a real device. They are created only inside the node's private ``/dev``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

NVIDIA_MAJOR = 195
NVIDIACTL_MINOR = 255
GPU_INSTANCES = 15
COMPUTE_INSTANCES = 8
MINORS_PER_GPU = GPU_INSTANCES * (1 + COMPUTE_INSTANCES)
FIRST_GPU_CAP = 3


def mig_minor_lines(gpu_minors: Iterable[int]) -> Iterator[tuple[str, int]]:
    """(name, minor) of every capability, as ``mig-minors`` lists them."""
    yield "config", 1
    yield "monitor", 2
    for gpu in gpu_minors:
        for gi in range(GPU_INSTANCES):
            access = FIRST_GPU_CAP + gpu * MINORS_PER_GPU + gi * (1 + COMPUTE_INSTANCES)
            yield f"gpu{gpu}/gi{gi}/access", access
            for ci in range(COMPUTE_INSTANCES):
                yield f"gpu{gpu}/gi{gi}/ci{ci}/access", access + 1 + ci


def mig_minors_text(gpu_minors: Iterable[int]) -> str:
    return "".join(f"{name} {minor}\n" for name, minor in mig_minor_lines(gpu_minors))


def used_char_majors(proc_devices: str) -> set[int]:
    majors: set[int] = set()
    in_char = False
    for line in proc_devices.splitlines():
        if line.strip() == "Character devices:":
            in_char = True
        elif line.strip() == "Block devices:":
            in_char = False
        elif in_char and line.split() and line.split()[0].isdigit():
            majors.add(int(line.split()[0]))
    return majors


def free_majors(count: int, proc_devices: str) -> list[int]:
    """``count`` character majors the kernel has not registered (searched downwards from 234)."""
    used = used_char_majors(proc_devices)
    free = [m for m in range(234, 199, -1) if m not in used]
    if len(free) < count:
        raise RuntimeError("no free character device majors between 200 and 234 for the simulated nvidia-uvm/caps")
    return free[:count]


def device_nodes(gpu_minors: Iterable[int], proc_devices: str) -> list[tuple[str, int, int, int]]:
    """(path relative to /dev, major, minor, mode) of every device node the driver would create."""
    minors = list(gpu_minors)
    uvm_major, caps_major = free_majors(2, proc_devices)
    nodes = [(f"nvidia{m}", NVIDIA_MAJOR, m, 0o666) for m in minors]
    nodes += [
        ("nvidiactl", NVIDIA_MAJOR, NVIDIACTL_MINOR, 0o666),
        ("nvidia-uvm", uvm_major, 0, 0o666),
        ("nvidia-uvm-tools", uvm_major, 1, 0o666),
    ]
    nodes += [(f"nvidia-caps/nvidia-cap{n}", caps_major, n, 0o444) for _, n in mig_minor_lines(minors)]
    return nodes


def create_device_nodes(dev: Path, gpu_minors: list[int], proc_devices: str) -> int:
    """Create the driver's device nodes under ``dev`` (the node's private /dev); returns how many."""
    nodes = [(dev / rel, major, minor, mode) for rel, major, minor, mode in device_nodes(gpu_minors, proc_devices)]
    (dev / "nvidia-caps").mkdir(mode=0o755, exist_ok=True)
    for path, major, minor, mode in nodes:
        if not path.exists():
            os.mknod(path, mode | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(path, mode)
    return len(nodes)
