"""Telemetry, memory, NUMA/PCIe placement (sysfs) and GPU-to-GPU topology of the simulated machines."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pynvml
import pytest

from nvml_sim import topology
from nvml_sim.hardware import MACHINE_PROFILES
from tests.conftest import MachineFactory

MIB = 1024 * 1024
P2P_READ = 0  # pynvml's NVML_P2P_CAPS_INDEX_READ is the tuple (0,)


@pytest.mark.parametrize("profile", sorted(MACHINE_PROFILES))
def test_an_idle_gpu_reports_readings_within_its_limits(machine: MachineFactory, profile: str) -> None:
    machine(profile)
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        low, high = pynvml.nvmlDeviceGetPowerManagementLimitConstraints(h)
        assert 0 < pynvml.nvmlDeviceGetPowerUsage(h) < pynvml.nvmlDeviceGetEnforcedPowerLimit(h) == high
        assert low < high == pynvml.nvmlDeviceGetPowerManagementDefaultLimit(h)
        assert 20 < pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU) < 50
        slowdown = pynvml.nvmlDeviceGetTemperatureThreshold(h, pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN)
        assert slowdown < pynvml.nvmlDeviceGetTemperatureThreshold(h, pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN)
        util = pynvml.nvmlDeviceGetUtilizationRates(h)
        assert (util.gpu, util.memory) == (0, 0)
        assert pynvml.nvmlDeviceGetEccMode(h) == [1, 1]
        assert pynvml.nvmlDeviceGetTotalEccErrors(h, 1, 0) == 0
        assert pynvml.nvmlDeviceGetVbiosVersion(h).count(".") == 4
        assert pynvml.nvmlDeviceGetPersistenceMode(h) == pynvml.NVML_FEATURE_ENABLED
        assert pynvml.nvmlDeviceGetVirtualizationMode(h) == pynvml.NVML_GPU_VIRTUALIZATION_MODE_NONE
        assert pynvml.nvmlDeviceGetModuleId(h) >= 1
        assert pynvml.nvmlDeviceGetComputeRunningProcesses(h) == []
        assert pynvml.nvmlDeviceGetClockInfo(h, 1) <= pynvml.nvmlDeviceGetMaxClockInfo(h, 1)


def test_memory_v1_counts_reserved_memory_as_used_and_v2_reports_it_apart(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    v1 = pynvml.nvmlDeviceGetMemoryInfo(h)
    v2 = pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)
    assert v1.total == v2.total == 40960 * MIB
    assert v2.reserved > 0 and v2.used == 0
    assert v1.used == v2.reserved + v2.used
    assert v1.free == v2.free == v2.total - v2.reserved - v2.used


def test_numa_node_is_not_supported_by_nvml_and_is_in_the_machines_sysfs(machine: MachineFactory) -> None:
    sim = machine("dgx-a100")
    root = sim.sysfs_root()
    for i, slot in enumerate(MACHINE_PROFILES["dgx-a100"].gpus):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetNumaNodeId(h)
        device = root / "bus" / "pci" / "devices" / f"0000:{slot.pci_bus:02x}:00.0"
        assert (device / "numa_node").read_text() == f"{slot.numa_node}\n"
        assert Path(os.path.realpath(device)).relative_to(root / "devices").parts[0] == f"pci0000:{slot.pcie_root:02x}"
        assert (device / "vendor").read_text() == "0x10de\n"


def test_cpu_affinity_is_the_cpus_of_the_gpus_numa_node_as_sysfs_lists_them(machine: MachineFactory) -> None:
    sim = machine("dgx-h100")
    root = sim.sysfs_root()
    for i in (0, 7):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        words = pynvml.nvmlDeviceGetCpuAffinity(h, 4)
        cpus = tuple(w * 64 + b for w, word in enumerate(words) for b in range(64) if word >> b & 1)
        bus = MACHINE_PROFILES["dgx-h100"].gpus[i].pci_bus
        listed = (root / "bus" / "pci" / "devices" / f"0000:{bus:02x}:00.0" / "local_cpulist").read_text().strip()
        assert topology.cpulist(cpus) == listed
        node = i // 4
        assert listed == (root / "devices" / "system" / "node" / f"node{node}" / "cpulist").read_text().strip()
        assert list(pynvml.nvmlDeviceGetMemoryAffinity(h, 1, pynvml.NVML_AFFINITY_SCOPE_NODE)) == [1 << node]
    assert len(pynvml.nvmlSystemGetTopologyGpuSet(0)) == 4


def test_gpus_sharing_a_switch_a_socket_or_nothing_are_that_far_apart(machine: MachineFactory) -> None:
    machine("dgx-a100")
    h = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(8)]
    ancestor = pynvml.nvmlDeviceGetTopologyCommonAncestor
    assert ancestor(h[0], h[0]) == pynvml.NVML_TOPOLOGY_INTERNAL
    assert ancestor(h[0], h[1]) == pynvml.NVML_TOPOLOGY_MULTIPLE  # one PCIe switch (nvidia-smi: PXB)
    assert ancestor(h[0], h[2]) == pynvml.NVML_TOPOLOGY_NODE
    assert ancestor(h[0], h[4]) == pynvml.NVML_TOPOLOGY_SYSTEM
    assert len(pynvml.nvmlDeviceGetTopologyNearestGpus(h[0], pynvml.NVML_TOPOLOGY_MULTIPLE)) == 1
    assert len(pynvml.nvmlDeviceGetTopologyNearestGpus(h[0], pynvml.NVML_TOPOLOGY_SYSTEM)) == 7
    assert pynvml.nvmlDeviceGetP2PStatus(h[0], h[7], pynvml.NVML_P2P_CAPS_INDEX_NVLINK) == pynvml.NVML_P2P_STATUS_OK


def test_pcie_cards_without_nvlink_do_p2p_only_over_pcie_within_a_socket(machine: MachineFactory) -> None:
    machine("l4")
    h = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(4)]
    status = pynvml.nvmlDeviceGetP2PStatus
    assert pynvml.nvmlDeviceGetTopologyCommonAncestor(h[0], h[1]) == pynvml.NVML_TOPOLOGY_HOSTBRIDGE
    assert status(h[0], h[1], P2P_READ) == pynvml.NVML_P2P_STATUS_OK
    assert status(h[0], h[1], pynvml.NVML_P2P_CAPS_INDEX_NVLINK) == pynvml.NVML_P2P_STATUS_NOT_SUPPORTED
    assert status(h[0], h[2], P2P_READ) == pynvml.NVML_P2P_STATUS_CHIPSET_NOT_SUPPORTED
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        status(h[0], h[0], P2P_READ)


def test_fabric_info_answers_on_an_nvswitch_fabric_only(machine: MachineFactory) -> None:
    machine("dgx-h100")
    info = pynvml.c_nvmlGpuFabricInfo_t()
    pynvml.nvmlDeviceGetGpuFabricInfo(pynvml.nvmlDeviceGetHandleByIndex(3), ctypes.byref(info))
    assert (info.state, info.status) == (pynvml.NVML_GPU_FABRIC_STATE_COMPLETED, pynvml.NVML_SUCCESS)
    v3 = pynvml.c_nvmlGpuFabricInfo_v3_t()
    v3.version = pynvml.nvmlGpuFabricInfo_v3
    pynvml.nvmlDeviceGetGpuFabricInfoV(pynvml.nvmlDeviceGetHandleByIndex(3), ctypes.byref(v3))
    assert v3.state == pynvml.NVML_GPU_FABRIC_STATE_COMPLETED
    pynvml.nvmlShutdown()
    machine("dgx-a100")
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetGpuFabricInfo(pynvml.nvmlDeviceGetHandleByIndex(0), ctypes.byref(info))
    pynvml.nvmlInit()  # the fixture shuts down once per machine it made
