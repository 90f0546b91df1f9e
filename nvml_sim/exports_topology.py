"""Exported NVML symbols: where a GPU sits (CPU and memory affinity) and how GPUs reach each other
(common PCIe ancestor, nearest GPUs, P2P capabilities), from the machine's layout (``topology.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nvml_sim import abi, codes, topology
from nvml_sim.abi import DEVICE, export, make_handle, need, put
from nvml_sim.machine import Gpu, NvmlFault

WORD_BITS = 64  # cpuSet / nodeSet are arrays of unsigned long
AFFINITY_SCOPES = (0, 1)  # NVML_AFFINITY_SCOPE_NODE, _SOCKET: one NUMA node per socket here


def _words(out: Any, size: int, bits: tuple[int, ...]) -> None:
    need(out)
    if size == 0:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    for i, word in enumerate(topology.bitmask_words(bits, size, WORD_BITS)):
        out[i] = word


@export()
def nvmlDeviceGetCpuAffinity(handle: Any, size: int, out: Any) -> None:
    st = abi.state()
    _words(out, size, topology.local_cpus(st, abi.gpu_device(handle, st)))


@export()
def nvmlDeviceGetCpuAffinityWithinScope(handle: Any, size: int, out: Any, scope: int) -> None:
    if scope not in AFFINITY_SCOPES:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    nvmlDeviceGetCpuAffinity(handle, size, out)


@export()
def nvmlDeviceGetMemoryAffinity(handle: Any, size: int, out: Any, scope: int) -> None:
    if scope not in AFFINITY_SCOPES:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    _words(out, size, (abi.gpu_device(handle)["numaNode"],))


@export()
def nvmlDeviceGetTopologyCommonAncestor(first: Any, second: Any, out: Any) -> None:
    need(out)
    st = abi.state()
    put(out, topology.common_ancestor(st, abi.gpu_device(first, st), abi.gpu_device(second, st)))


def _gpu_list(count: Any, out: Any, gpus: list[Gpu]) -> None:
    """NVML's two-call protocol: ``*count == 0`` asks how many; otherwise up to ``*count`` handles are written."""
    need(count)
    if count[0] == 0:
        count[0] = len(gpus)
        return
    need(out)
    if count[0] < len(gpus):
        count[0] = len(gpus)
        raise NvmlFault(codes.INSUFFICIENT_SIZE)
    for i, gpu in enumerate(gpus):
        out[i] = abi.ffi.cast("nvmlDevice_t", make_handle(DEVICE, gpu["index"]))
    count[0] = len(gpus)


def _gpus(where: Callable[[Gpu], bool]) -> list[Gpu]:
    return [gpu for gpu in abi.state()["gpus"] if where(gpu)]


@export()
def nvmlDeviceGetTopologyNearestGpus(handle: Any, level: int, count: Any, out: Any) -> None:
    """The other GPUs whose common ancestor with this one is at ``level`` or closer."""
    st = abi.state()
    me = abi.gpu_device(handle, st)
    near = _gpus(lambda g: g["index"] != me["index"] and topology.common_ancestor(st, me, g) <= level)
    _gpu_list(count, out, near)


@export()
def nvmlSystemGetTopologyGpuSet(cpu: int, count: Any, out: Any) -> None:
    """The GPUs local to the NUMA node that holds CPU ``cpu``."""
    st = abi.state()
    if cpu >= topology.cpu_layout(st).count:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    _gpu_list(count, out, _gpus(lambda g: cpu in topology.local_cpus(st, g)))


@export()
def nvmlDeviceGetP2PStatus(first: Any, second: Any, caps_index: int, out: Any) -> None:
    """A GPU with itself is INVALID_ARGUMENT (nvidia-smi shows "X" there and does not ask)."""
    need(out)
    st = abi.state()
    a, b = abi.gpu_device(first, st), abi.gpu_device(second, st)
    if a["index"] == b["index"] or caps_index not in range(topology.P2P_PROP + 1):
        raise NvmlFault(codes.INVALID_ARGUMENT)
    put(out, topology.p2p_status(st, a, b, caps_index))
