"""What a node would publish with one GPU in another mode: the plugin's own slice builder, one GPU swapped. Pure.

``gpu_group`` is ``dra_driver.slices.builder.gpu_group`` (the code the kubelet plugin publishes with) on the GPU
rebuilt by ``view``; ``with_gpu`` takes the node's published slices, drops that GPU's devices and counter sets
and adds the new ones, so every other GPU (taints included) stays exactly as published. A static MIG layout
becomes MIG devices on the rebuilt GPU, placed first fit, as ``static_mig`` would publish them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from api.partitioning import GpuMode, Mig, Shared, TimeSlice, Whole
from controller.planner.view import GpuView, NodeView, Obj
from dra_driver.errors import ConfigError
from dra_driver.inventory import Gpu, Inventory, MigDevice, Placement
from dra_driver.resourceslice import render
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.slices.builder import gpu_group


@dataclass(frozen=True)
class Target:
    """A mode a GPU could be put in; ``layout`` only for a static MIG layout (profile names by placement)."""

    mode: GpuMode
    layout: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"mig[{','.join(self.layout)}]" if self.layout else str(self.mode)

    @property
    def is_mig(self) -> bool:
        return isinstance(self.mode, Mig)


def place_layout(gpu: Gpu, layout: Sequence[str]) -> tuple[MigDevice, ...] | None:
    """MIG devices for ``layout`` on ``gpu``, the biggest profiles first, each at its first free placement (by
    placement order); None if they do not fit."""
    used: set[int] = set()
    devices = []
    profiles = [gpu.mig_profile(name) for name in layout]
    if any(p is None for p in profiles):
        return None
    biggest_first = sorted(range(len(layout)), key=lambda k: -(profiles[k].memory_slices))  # type: ignore[union-attr]
    for i in biggest_first:
        name, profile = layout[i], profiles[i]
        assert profile is not None
        spot = next(
            (p for p in profile.placements if not used & set(range(p.start, p.start + p.size))),
            None,
        )
        if spot is None:
            return None
        used |= set(range(spot.start, spot.start + spot.size))
        devices.append(
            MigDevice(
                uuid=f"MIG-planned-{gpu.uuid.removeprefix('GPU-')}-{spot.start}",
                parent_uuid=gpu.uuid,
                gpu_instance_id=i + 1,
                compute_instance_id=0,
                profile=name,
                placement=Placement(spot.start, spot.size),
                memory_bytes=profile.memory_bytes,
                multiprocessors=profile.multiprocessors,
                compute_slices=profile.compute_slices,
            )
        )
    return tuple(sorted(devices, key=lambda d: d.placement.start))


def gpu_in(gpu: Gpu, target: Target) -> Gpu | None:
    """The GPU as it would be in ``target`` (MIG mode on for mig); None for a layout that does not fit."""
    if not target.is_mig:
        return replace(gpu, mig_enabled=False, mig_devices=())
    devices = place_layout(gpu, target.layout) if target.layout else ()
    if devices is None:
        return None
    return replace(gpu, mig_enabled=True, mig_devices=devices)


def targets(view: GpuView, caps: Capabilities, modes: frozenset[str], replicas: Sequence[int]) -> list[Target]:
    """Every target the policy allows for this GPU, except its current mode (static MIG layouts: see decide)."""
    out: list[Target] = []
    if "whole" in modes:
        out.append(Target(Whole()))
    if "timeslice" in modes:
        out += [Target(TimeSlice(n)) for n in replicas]
    if "shared" in modes and caps.consumable_capacity:
        out.append(Target(Shared()))
    if "mig" in modes and view.gpu.mig_capable and caps.partitionable_devices:
        out.append(Target(Mig()))
    current = Target(view.mode, view.layout)
    return [t for t in out if t != current]


def group_objects(node: NodeView, gpu: Gpu, target: Target, caps: Capabilities) -> tuple[list[Obj], list[Obj]]:
    """(v1 devices, v1 counter sets) the GPU would publish in ``target``."""
    inv = Inventory(node.driver_version, node.cuda_driver_version, "", (gpu,))
    try:
        group = gpu_group(inv, gpu, target.mode, caps, [])
    except ConfigError:
        return [], []
    devices: list[Obj] = [render.device(d, "v1") for d in group.devices]
    sets: list[Obj] = []
    if group.counter_set is not None:
        counters = {k: {"value": v} for k, v in group.counter_set.counters}
        sets.append({"name": group.counter_set.name, "counters": counters})
    return devices, sets


def with_gpu(node: NodeView, view: GpuView, target: Target, caps: Capabilities) -> list[Obj] | None:
    """The node's v1 slices with ``view``'s GPU in ``target``; None if the target cannot be built."""
    gpu = gpu_in(view.gpu, target)
    if gpu is None:
        return None
    devices, sets = group_objects(node, gpu, target, caps)
    if not devices:
        return None
    if view.taints:
        devices = [{**d, "taints": [dict(t) for t in view.taints]} for d in devices]
    kept: list[Obj] = []
    for s in node.slices:
        spec = dict(s["spec"])
        if spec.get("devices"):
            spec["devices"] = [d for d in spec["devices"] if d["name"] not in view.devices]
        if spec.get("sharedCounters"):
            spec["sharedCounters"] = [c for c in spec["sharedCounters"] if c["name"] not in view.counter_sets]
        kept.append({"metadata": {"name": s["metadata"]["name"]}, "spec": spec})
    base = f"{node.name}-{node.driver}-planned"
    added = [{"devices": devices}]
    if sets:
        added = (
            [{"sharedCounters": sets}, {"devices": devices}]
            if caps.counters_in_own_slice
            else [{"devices": devices, "sharedCounters": sets}]
        )
    for i, extra in enumerate(added):
        spec = {"driver": node.driver, "nodeName": node.name, **extra}
        kept.append({"metadata": {"name": f"{base}-{i}"}, "spec": spec})
    pool = {"name": node.pool, "generation": node.generation, "resourceSliceCount": len(kept)}
    return [{**s, "spec": {**s["spec"], "pool": pool}} for s in kept]
