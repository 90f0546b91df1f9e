"""Which pending units one GPU alone could serve in a given mode, and the static MIG layout a queue needs. Pure.

A candidate is first scored on a node that holds only that GPU (in the target mode, nothing allocated): per unit
shape (units whose claims are alike), how many of them the allocator places there one after the other. GPUs of one model on nodes of one
driver version give the same answer, so it is worked out once per (model, target) and shared by every node;
``decide`` then verifies the best candidates on their real node. A static MIG layout for a cluster without
partitionable devices is read from the same trial in partitionable MIG mode: the MIG devices the allocator
chose for the queue, placements that cannot overlap, *are* a layout that fits the queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from api.partitioning import Mig
from controller.planner.candidates import Target, gpu_in, group_objects
from controller.planner.sim import NodeSim, Obj
from controller.planner.view import GpuView, NodeView, attributes
from controller.planner.world import Unit
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.structured import parse_slice
from dra_driver.structured.model import DeviceClass, PoolId

ISOLATED = "planner-isolated-node"


def signature(node: NodeView, view: GpuView) -> tuple[object, ...]:
    g = view.gpu
    return (node.driver, node.driver_version, node.cuda_driver_version, g.product_name, g.memory_bytes, g.architecture)


class Estimator:
    def __init__(self, units: Sequence[Unit], classes: dict[str, DeviceClass], caps: Capabilities) -> None:
        self.units = units
        self.classes = classes
        self.caps = caps
        self._capacity: dict[tuple[object, ...], Mapping[str, int]] = {}
        self._by_shape: dict[str, list[Unit]] = {}
        for unit in units:
            self._by_shape.setdefault(unit.shape, []).append(unit)
        self._layouts: dict[tuple[object, ...], tuple[str, ...]] = {}

    def _trial(
        self, node: NodeView, view: GpuView, target: Target, caps: Capabilities, units: Sequence[Unit], stop: bool
    ) -> tuple[int, NodeSim]:
        """How many of ``units`` (in order) the GPU alone takes in ``target`` (``stop``: up to the first misfit)."""
        sim = NodeSim({}, (), self.classes, {}, {})
        gpu = gpu_in(view.gpu, target)
        if gpu is None:
            return 0, sim
        devices, sets = group_objects(node, gpu, target, caps)
        pool = {"name": ISOLATED, "generation": 1, "resourceSliceCount": 2 if sets else 1}
        spec = {"driver": node.driver, "nodeName": ISOLATED, "pool": pool}
        raw: list[Obj] = [{"metadata": {"name": "a"}, "spec": {**spec, "devices": devices}}]
        if sets:
            raw.append({"metadata": {"name": "b"}, "spec": {**spec, "sharedCounters": sets}})
        sim = NodeSim({ISOLATED: [parse_slice(s) for s in raw]}, (), self.classes, {}, {})
        taken = 0
        for unit in units:
            if sim.place(ISOLATED, unit.parsed) is not None:
                taken += 1
            elif stop:
                break
        return taken, sim

    def capacity(self, node: NodeView, view: GpuView, target: Target) -> Mapping[str, int]:
        """Per unit shape, how many units of that shape alone the GPU would take in ``target`` (0s left out)."""
        key = (*signature(node, view), str(target))
        if key not in self._capacity:
            out = {}
            for shape, members in self._by_shape.items():
                taken, _ = self._trial(node, view, target, self.caps, members, True)
                if taken:
                    out[shape] = taken
            self._capacity[key] = out
        return self._capacity[key]

    def static_layout(self, node: NodeView, view: GpuView) -> tuple[str, ...]:
        """The MIG profiles (by placement) the queue would take on this GPU; () when MIG serves none of it."""
        key = signature(node, view)
        if key not in self._layouts:
            caps = replace(self.caps, partitionable_devices=True)
            _, sim = self._trial(node, view, Target(Mig()), caps, self.units, False)
            taken = sim.held(PoolId(node.driver, ISOLATED))
            chosen = []
            for s in sim.state(ISOLATED).slices:
                for d in s.devices:
                    if d.name in taken:
                        attrs = attributes(d.source, node.driver)
                        if attrs.get("type") == "mig":
                            chosen.append((int(attrs.get("placement", 0)), str(attrs.get("profile"))))
            self._layouts[key] = tuple(p for _, p in sorted(chosen))
        return self._layouts[key]
