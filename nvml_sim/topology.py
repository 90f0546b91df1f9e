"""Where the simulated GPUs sit: PCIe paths, NUMA nodes, CPU affinity, the paths between two GPUs. Pure.

The layout follows from the machine's profile (``hardware.MachineProfile``: each GPU's root complex and
shared PCIe switch, the CPU sockets), so state files of every version have it. ``sysfs.py`` writes it as the
kernel shows it; the NVML topology calls answer from the same facts.
"""

from __future__ import annotations

from nvml_sim.hardware import MACHINE_PROFILES, CpuLayout, GpuSlot
from nvml_sim.machine import Gpu, State, model_of
from nvml_sim.telemetry import telemetry

# nvmlGpuTopologyLevel_t
TOPOLOGY_INTERNAL, TOPOLOGY_SINGLE, TOPOLOGY_MULTIPLE = 0, 10, 20
TOPOLOGY_HOSTBRIDGE, TOPOLOGY_NODE, TOPOLOGY_SYSTEM = 30, 40, 50
# nvmlGpuP2PStatus_t and nvmlGpuP2PCapsIndex_t
P2P_OK, P2P_CHIPSET_NOT_SUPPORTED, P2P_NOT_SUPPORTED = 0, 1, 5
P2P_READ, P2P_WRITE, P2P_NVLINK, P2P_ATOMICS, P2P_PROP = 0, 1, 2, 3, 4
PCI_VENDOR_NVIDIA = 0x10DE
PCI_CLASS_3D_CONTROLLER = 0x030200


def slot(state: State, gpu: Gpu) -> GpuSlot:
    profile = MACHINE_PROFILES.get(state.get("profile", ""))
    if profile is not None and gpu["index"] < len(profile.gpus):
        return profile.gpus[gpu["index"]]
    return GpuSlot(gpu["model"], gpu["pciBus"], gpu["numaNode"], gpu["pciBus"] & 0xF0)


def cpu_layout(state: State) -> CpuLayout:
    profile = MACHINE_PROFILES.get(state.get("profile", ""))
    return profile.cpu if profile is not None else CpuLayout()


def numa_nodes(state: State) -> tuple[int, ...]:
    return tuple(range(cpu_layout(state).sockets))


def local_cpus(state: State, gpu: Gpu) -> tuple[int, ...]:
    return cpu_layout(state).cpus_of_node(gpu["numaNode"])


def bus_id(bus: int, device: int = 0) -> str:
    """The kernel's form of a PCI address (``0000:07:00.0``)."""
    return f"0000:{bus:02x}:{device:02x}.0"


def pcie_root(state: State, gpu: Gpu) -> str:
    """The host bridge above the GPU, as Kubernetes' ``resource.kubernetes.io/pcieRoot`` names it."""
    return f"pci0000:{slot(state, gpu).pcie_root:02x}"


def device_path(state: State, gpu: Gpu) -> tuple[str, ...]:
    """Components of the GPU's directory under ``/sys/devices``: host bridge, root port, [switch ports], GPU."""
    s = slot(state, gpu)
    ports: tuple[str, ...]
    if s.pcie_switch is None:
        ports = (bus_id(s.pcie_root, (s.pci_bus - s.pcie_root) & 0x1F),)
    else:
        upstream, downstream = s.pcie_switch, s.pcie_switch + 1
        ports = (bus_id(s.pcie_root, 1), bus_id(upstream), bus_id(downstream, (s.pci_bus - downstream) & 0x1F))
    return (pcie_root(state, gpu), *ports, bus_id(s.pci_bus))


def common_ancestor(state: State, a: Gpu, b: Gpu) -> int:
    """nvmlGpuTopologyLevel_t of the path between two GPUs."""
    sa, sb = slot(state, a), slot(state, b)
    if a["index"] == b["index"]:
        return TOPOLOGY_INTERNAL
    if sa.pcie_switch is not None and sa.pcie_switch == sb.pcie_switch:
        return TOPOLOGY_MULTIPLE
    if sa.pcie_root == sb.pcie_root:
        return TOPOLOGY_HOSTBRIDGE
    if a["numaNode"] == b["numaNode"]:
        return TOPOLOGY_NODE
    return TOPOLOGY_SYSTEM


def p2p_status(state: State, a: Gpu, b: Gpu, caps_index: int) -> int:
    """NVLink-connected SXM GPUs can do everything; PCIe cards read/write within a NUMA node only."""
    if telemetry(a).nvlink and telemetry(b).nvlink and model_of(a).architecture == model_of(b).architecture:
        return P2P_OK
    if caps_index in (P2P_NVLINK, P2P_ATOMICS):
        return P2P_NOT_SUPPORTED
    return P2P_OK if common_ancestor(state, a, b) <= TOPOLOGY_NODE else P2P_CHIPSET_NOT_SUPPORTED


def bitmask_words(bits: tuple[int, ...], words: int, word_bits: int = 64) -> list[int]:
    """``bits`` as an array of ``words`` words, bit 0 of word 0 first (NVML's cpuSet / nodeSet layout)."""
    out = [0] * words
    for bit in bits:
        if bit < words * word_bits:
            out[bit // word_bits] |= 1 << (bit % word_bits)
    return out


def cpulist(cpus: tuple[int, ...]) -> str:
    """The kernel's list form: ``0-63,128-191``."""
    ranges: list[list[int]] = []
    for cpu in sorted(cpus):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(f"{lo}-{hi}" if hi > lo else f"{lo}" for lo, hi in ranges)


def cpumask(cpus: tuple[int, ...], count: int) -> str:
    """The kernel's mask form: 32-bit hex words, most significant first, comma-separated."""
    words = bitmask_words(cpus, -(-count // 32), 32)
    return ",".join(f"{w:08x}" for w in reversed(words))
