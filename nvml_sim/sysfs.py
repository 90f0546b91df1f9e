"""The simulated machine's sysfs: the files a driver reads on a real host for NUMA and PCIe placement.

Real NVML answers ``nvmlDeviceGetNumaNodeId`` with NOT_SUPPORTED on x86 servers (it is meant for GPUs that are
NUMA nodes themselves), so a driver reads the GPU's NUMA node and PCIe root from sysfs, as Kubernetes'
``deviceattribute`` helpers do. The simulated machine has that tree next to its state file
(``SimulatedMachine.sysfs_root()``; ``/tmp/node.json`` -> ``/tmp/node.sys/``), laid out like ``/sys``::

    devices/pci0000:00/0000:00:01.0/0000:05:00.0/0000:06:01.0/0000:07:00.0/   the GPU (DGX A100 GPU 0)
        numa_node  local_cpulist  local_cpus  vendor  device  class           (each dir on the path: numa_node)
    bus/pci/devices/0000:07:00.0 -> ../../../devices/pci0000:00/.../0000:07:00.0
    devices/system/node/online, devices/system/node/node<N>/cpulist

So ``readlink -f <root>/bus/pci/devices/<bdf>`` names the PCIe root (``pci0000:00``) and
``<root>/bus/pci/devices/<bdf>/numa_node`` the NUMA node. Writing is idempotent.
"""

from __future__ import annotations

import os
from pathlib import Path

from nvml_sim import topology
from nvml_sim.machine import State, model_of


def root_for(state_path: Path) -> Path:
    """Where the sysfs tree of the machine in ``state_path`` lives."""
    return state_path.with_name(state_path.stem + ".sys")


def _put(path: Path, text: str) -> None:
    if path.is_file() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _link(path: Path, target: str) -> None:
    if path.is_symlink() and os.readlink(path) == target:
        return
    tmp = path.with_name(f".{path.name}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def write(root: Path, state: State) -> Path:
    """Lay out (or bring up to date) the sysfs tree of ``state`` under ``root``; returns ``root``."""
    layout = topology.cpu_layout(state)
    bus_devices = root / "bus" / "pci" / "devices"
    bus_devices.mkdir(parents=True, exist_ok=True)
    for gpu in state["gpus"]:
        parts = topology.device_path(state, gpu)
        node = str(gpu["numaNode"]) + "\n"
        for depth in range(1, len(parts) + 1):
            directory = root.joinpath("devices", *parts[:depth])
            directory.mkdir(parents=True, exist_ok=True)
            if depth > 1:
                _put(directory / "numa_node", node)
                _link(bus_devices / parts[depth - 1], "../../../devices/" + "/".join(parts[:depth]))
        cpus = topology.local_cpus(state, gpu)
        _put(directory / "local_cpulist", topology.cpulist(cpus) + "\n")
        _put(directory / "local_cpus", topology.cpumask(cpus, layout.count) + "\n")
        _put(directory / "vendor", f"0x{topology.PCI_VENDOR_NVIDIA:04x}\n")
        _put(directory / "device", f"0x{model_of(gpu).pci_device_id >> 16:04x}\n")  # NVML's id: device << 16 | vendor
        _put(directory / "class", f"0x{topology.PCI_CLASS_3D_CONTROLLER:06x}\n")
    nodes = root / "devices" / "system" / "node"
    nodes.mkdir(parents=True, exist_ok=True)
    for n in topology.numa_nodes(state):
        (nodes / f"node{n}").mkdir(exist_ok=True)
        _put(nodes / f"node{n}" / "cpulist", topology.cpulist(layout.cpus_of_node(n)) + "\n")
    _put(nodes / "online", topology.cpulist(topology.numa_nodes(state)) + "\n")
    return root
