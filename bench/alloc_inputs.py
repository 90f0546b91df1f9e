"""What ``bench.bench_allocator`` allocates, for ours and for the Go baseline alike: API JSON only.

A cluster is N simulated DGX A100 nodes (8 GPUs each). The driver's ``build_pool`` renders one node's
ResourceSlices once per mode (whole GPUs, or MIG); every other node gets a copy with its own name in the
slices' names, pool and ``nodeName`` (device names and attributes are the same on every node, UUIDs
included, which the allocator never compares across pools). The MIG cluster holds 9 MIG devices per node
in one allocated claim before the bench's claim is allocated. ``go_input`` writes these objects for the Go
program; the nodes of an N-node case are the first N, the slices those naming one of them.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.partitioning import GpuMode, Mig, Whole
from dra_driver.classes import device_classes
from dra_driver.inventory import Inventory
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.render import render
from dra_driver.slices.builder import build_pool
from nvml_sim.control import SimulatedMachine

D = "gpu.dra-driver.dev"
Obj = dict[str, Any]
CLASSES: list[Obj] = device_classes()
HELD = [f"gpu-{g}-mig-3g-20gb-4" for g in range(8)] + ["gpu-0-mig-1g-5gb-3"]  # per node, before the claim
PLACEHOLDER = "bench-node-placeholder"
# An A100-SXM4-40GB reports 40192Mi of memory, under 40Gi: the selector asks for 32Gi so every GPU matches.
CEL_SELECTOR = (
    f'device.capacity["{D}"].memory.compareTo(quantity("32Gi")) >= 0'
    f' && device.attributes["{D}"].productName.startsWith("NVIDIA A100")'
)


@dataclass(frozen=True)
class Cluster:
    """N nodes' slices (node by node, ``per_node`` slices each) and the claims allocated before the bench's."""

    name: str
    nodes: tuple[str, ...]
    slices: tuple[Obj, ...]
    per_node: int
    allocated: tuple[Obj, ...] = ()

    def first(self, count: int) -> tuple[Obj, ...]:
        """The slices of the first ``count`` nodes."""
        return self.slices[: self.per_node * count]


@dataclass(frozen=True)
class Kind:
    """A claim shape: its key in the JSON output, its label in the table, the cluster it is allocated in."""

    key: str
    label: str
    cluster: str
    claim: Obj


def node_names(count: int) -> tuple[str, ...]:
    return tuple(f"node-{i:04d}" for i in range(count))


def inventory() -> Inventory:
    state = Path(tempfile.mkdtemp(prefix="bench-alloc-")) / "dgx-a100.json"
    SimulatedMachine.create(state, "dgx-a100").activate()
    with Nvml() as nvml:
        return discover(nvml)


def _cluster(inv: Inventory, name: str, mode: GpuMode, nodes: Sequence[str], held: Sequence[str]) -> Cluster:
    modes = {g.index: mode for g in inv.gpus}
    template = json.dumps(render(build_pool(inv, modes, Capabilities(), D, PLACEHOLDER), 1, "v1"))
    slices: list[Obj] = []
    for node in nodes:
        slices.extend(json.loads(template.replace(PLACEHOLDER, node)))
    results = [{"request": "r", "driver": D, "pool": n, "device": d} for n in nodes for d in held]
    allocated = (
        (
            {
                "metadata": {"name": "held", "namespace": "bench"},
                "status": {"allocation": {"devices": {"results": results}}},
            },
        )
        if results
        else ()
    )
    return Cluster(name, tuple(nodes), tuple(slices), len(slices) // len(nodes), allocated)


def clusters(inv: Inventory, count: int) -> dict[str, Cluster]:
    nodes = node_names(count)
    return {"whole": _cluster(inv, "whole", Whole(), nodes, ()), "mig": _cluster(inv, "mig", Mig(), nodes, HELD)}


def claim(device_class: str, *selectors: str) -> Obj:
    exactly: Obj = {"deviceClassName": f"{device_class}.dra-driver.dev", "allocationMode": "ExactCount", "count": 1}
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": s}} for s in selectors]
    return {
        "metadata": {"name": "c", "namespace": "bench", "uid": "bench-claim"},
        "spec": {"devices": {"requests": [{"name": "r", "exactly": exactly}]}},
    }


KINDS = (
    Kind("whole", "whole GPU", "whole", claim("gpu")),
    Kind("mig", "MIG 1g.5gb, 9 held per node", "mig", claim("mig-1g-5gb")),
    Kind("cel", "CEL on memory (>= 32Gi, A100)", "whole", claim("gpu", CEL_SELECTOR)),
)


def go_input(path: Path, all_clusters: Mapping[str, Cluster], counts: Sequence[int]) -> None:
    """The Go program's input: every cluster once, and one case per claim kind and node count."""
    doc = {
        "clusters": {
            name: {"slices": list(c.slices), "classes": CLASSES, "allocatedClaims": list(c.allocated)}
            for name, c in all_clusters.items()
        },
        "cases": [
            {"kind": k.key, "cluster": k.cluster, "claim": k.claim, "nodes": list(all_clusters[k.cluster].nodes[:n])}
            for k in KINDS
            for n in counts
        ],
    }
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
