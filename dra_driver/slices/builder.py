"""Inventory + per-GPU modes + cluster capabilities -> the node's pool of ResourceSlices. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import assert_never

from api.partitioning import GpuMode, Mig, Shared, TimeSlice, Whole
from dra_driver.errors import ConfigError
from dra_driver.inventory import Gpu, Inventory
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.model import CounterSet, Device, DeviceTaint, Pool, SliceContent
from dra_driver.slices import devices as dev

MAX_DEVICES = 128
MAX_DEVICES_WITH_COUNTERS = 64
MAX_COUNTER_SETS = 8


@dataclass(frozen=True)
class GpuGroup:
    """One GPU's devices and the counter set they consume (if any): kept together in a slice."""

    devices: tuple[Device, ...]
    counter_set: CounterSet | None = None


def gpu_group(inv: Inventory, gpu: Gpu, mode: GpuMode, caps: Capabilities, notes: list[str]) -> GpuGroup:
    match mode:
        case Whole():
            return GpuGroup((dev.whole_gpu(inv, gpu),))
        case Mig():
            if not gpu.mig_capable:
                notes.append(f"GPU {gpu.index} ({gpu.product_name}) cannot do MIG: published whole")
                return GpuGroup((dev.whole_gpu(inv, gpu),))
            if not gpu.mig_enabled:
                notes.append(
                    f"GPU {gpu.index}: MIG mode is disabled (enable it with 'nvidia-smi -i {gpu.index} -mig 1'"
                    " and reset the GPU): published whole"
                )
                return GpuGroup((dev.whole_gpu(inv, gpu),))
            if caps.partitionable_devices:
                devices, counters = dev.partitionable_mig(inv, gpu)
                return GpuGroup(devices, counters)
            notes.append(f"GPU {gpu.index}: static MIG, {len(gpu.mig_devices)} existing MIG device(s) published")
            return GpuGroup(dev.static_mig(inv, gpu))
        case TimeSlice(replicas):
            devices, counter_set = dev.timeslice(inv, gpu, replicas, caps.partitionable_devices)
            return GpuGroup(devices, counter_set)
        case Shared():
            if not caps.consumable_capacity:
                raise ConfigError(
                    f"mode of GPU {gpu.index}",
                    "'shared' needs consumable capacity (DRAConsumableCapacity, Kubernetes 1.34+ with the gate on); "
                    "choose whole, mig or timeslice:N for this cluster",
                )
            return GpuGroup((dev.shared(inv, gpu),))
        case _:
            assert_never(mode)


def _tainted(group: GpuGroup, taints: tuple[DeviceTaint, ...]) -> GpuGroup:
    if not taints:
        return group
    return GpuGroup(tuple(replace(d, taints=taints) for d in group.devices), group.counter_set)


def _pack(groups: list[GpuGroup], caps: Capabilities) -> list[SliceContent]:
    """Pack GPU groups in order into slices within the API limits; counter sets apart where required."""
    slices: list[SliceContent] = []
    if caps.counters_in_own_slice:
        sets = [g.counter_set for g in groups if g.counter_set is not None]
        for i in range(0, len(sets), MAX_COUNTER_SETS):
            slices.append(SliceContent(counter_sets=tuple(sets[i : i + MAX_COUNTER_SETS])))
    current: list[GpuGroup] = []

    def flush() -> None:
        if current:
            inline = () if caps.counters_in_own_slice else tuple(g.counter_set for g in current if g.counter_set)
            slices.append(SliceContent(tuple(d for g in current for d in g.devices), inline))
            current.clear()

    for group in groups:
        candidate = [*current, group]
        count = sum(len(g.devices) for g in candidate)
        limit = MAX_DEVICES_WITH_COUNTERS if any(d.consumes for g in candidate for d in g.devices) else MAX_DEVICES
        set_count = sum(1 for g in candidate if g.counter_set is not None)
        if current and (count > limit or set_count > MAX_COUNTER_SETS):
            flush()
        current.append(group)
    flush()
    return slices


def build_pool(
    inv: Inventory,
    modes: Mapping[int, GpuMode],
    caps: Capabilities,
    driver: str,
    node: str,
    taints: Mapping[int, tuple[DeviceTaint, ...]] | None = None,
) -> Pool:
    """The desired pool: one group of devices per healthy GPU (in index order), packed into slices.

    ``taints`` (by GPU index) go on every device of that GPU, where the cluster keeps device taints."""
    notes = list(caps.describe())
    groups = [gpu_group(inv, gpu, modes.get(gpu.index, Whole()), caps, notes) for gpu in inv.gpus]
    if taints and caps.device_taints:
        groups = [_tainted(g, taints.get(gpu.index, ())) for g, gpu in zip(groups, inv.gpus, strict=True)]
    elif taints and any(taints.values()):
        notes.append("the cluster drops device taints (DRADeviceTaints off): unhealthy GPUs are published untainted")
    notes += [f"GPU {u.index} not published: {u.reason}" for u in inv.unhealthy]
    slices = _pack(groups, caps) or [SliceContent()]  # an empty slice says "driver up, no devices"
    return Pool(driver, node, tuple(slices), tuple(notes))
