"""A small cluster for the planner's tests: simulated machines discovered through NVML, their slices built by
the plugin's own builder, claims and pods as the API server returns them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from api.names import DEFAULT_DRIVER_NAME
from api.partitioning import GpuMode
from controller.planner import World
from controller.planner.policy import OPT_IN_LABEL
from dra_driver.classes import class_name, device_classes
from dra_driver.inventory import Inventory
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from dra_driver.resourceslice import render
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.slices.builder import build_pool
from tests.conftest import MachineFactory

Obj = dict[str, Any]
T0 = "2026-01-01T00:00:00Z"  # every object's creation; tests pass now = T0 + seconds
T0_S = 1767225600.0
DRIVER = DEFAULT_DRIVER_NAME


@pytest.fixture
def inventory(machine: MachineFactory) -> Callable[..., Inventory]:
    cache: dict[tuple[str, bool], Inventory] = {}

    def make(profile: str, mig_enabled: bool = False) -> Inventory:
        if (profile, mig_enabled) not in cache:
            sim = machine(profile, init=False, mig_enabled=mig_enabled)
            with Nvml() as nvml:
                cache[(profile, mig_enabled)] = discover(nvml, sim.sysfs_root())
        return cache[(profile, mig_enabled)]

    return make


def claim(name: str, kind: str = "timeslice", count: int = 1, ns: str = "default") -> Obj:
    request = {"name": "r", "exactly": {"deviceClassName": class_name(kind), "count": count}}
    return {
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "creationTimestamp": T0},
        "spec": {"devices": {"requests": [request]}},
    }


def pod(name: str, claims: Sequence[str], ns: str = "default", node_selector: Mapping[str, str] | None = None) -> Obj:
    spec: Obj = {"resourceClaims": [{"name": f"c{i}", "resourceClaimName": c} for i, c in enumerate(claims)]}
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    return {
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": T0},
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def allocated(obj: Obj, node: str, device: str) -> Obj:
    result = {"request": "r", "driver": DRIVER, "pool": node, "device": device}
    return {**obj, "status": {"allocation": {"devices": {"results": [result]}}}}


@dataclass
class Cluster:
    """Nodes (with their inventories and modes), claims and pods; ``world()`` is the planner's input."""

    caps: Capabilities = field(default_factory=Capabilities)
    nodes: dict[str, tuple[Inventory, dict[int, GpuMode], dict[str, str]]] = field(default_factory=dict)
    claims: list[Obj] = field(default_factory=list)
    pods: list[Obj] = field(default_factory=list)
    node_modes: list[Obj] = field(default_factory=list)

    def node(
        self, name: str, inv: Inventory, modes: Mapping[int, GpuMode] | None = None, opted_in: bool = True
    ) -> None:
        labels = {OPT_IN_LABEL: "true"} if opted_in else {}
        self.nodes[name] = (inv, dict(modes or {}), labels)

    def pending(self, pod_name: str, *claims: Obj, **kw: Any) -> None:
        self.claims += claims
        self.pods.append(pod(pod_name, [c["metadata"]["name"] for c in claims], **kw))

    def slices(self) -> list[Obj]:
        out = []
        for name, (inv, modes, _) in self.nodes.items():
            out += render.render(build_pool(inv, modes, self.caps, DRIVER, name), 1, "v1")
        return out

    def world(self) -> World:
        return World(
            nodes={n: labels for n, (_, _, labels) in self.nodes.items()},
            slices=self.slices(),
            classes=device_classes(DRIVER, self.caps),
            claims=self.claims,
            pods=self.pods,
            node_modes=self.node_modes,
            caps=self.caps,
        )
