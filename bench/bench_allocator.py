"""Allocating one claim against 500 simulated DGX A100 nodes (8 GPUs each), as one scheduling cycle's Filter.

Slices are built in memory by the driver's ``build_pool`` for 500 node names (no API server). A "claim" is
one ``allocate`` per node, all 500 nodes, so claims/s is how many pods per second the Filter phase of a
scheduler using this allocator could handle. Shapes: a whole GPU; a MIG 1g.5gb device with 9 MIG devices
already allocated on every node; a CEL selector on memory and product name. Baselines in the same run:
(a) evaluating the claim's class selector once on every device of the 500 nodes (what an allocator that
looks at every device would spend on CEL alone; first fit stops earlier), (b) the same 500 calls against a
cluster of just that one node (what the size of the cluster state costs each call).

Prints numbers; asserts nothing. Timings are the best of ``--repeat`` runs after one warm-up run. A
``ClusterState`` remembers the pools and counters it built, so "first" is also shown: one pass on a new
``ClusterState`` of the same parsed slices (pools and counters built again; CEL views already built).

    .venv/bin/python -m bench.bench_allocator [--nodes 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from api.partitioning import GpuMode, Mig, Whole
from dra_driver.cel import compile_selector
from dra_driver.classes import device_classes
from dra_driver.inventory import Inventory
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.render import render
from dra_driver.slices.builder import build_pool
from dra_driver.structured import ClusterState, Node, Unsatisfiable, allocate, cluster_state
from nvml_sim.control import SimulatedMachine

D = "gpu.dra-driver.dev"
Obj = dict[str, Any]
CLASSES = {c["metadata"]["name"]: c for c in device_classes()}
HELD = [f"gpu-{g}-mig-3g-20gb-4" for g in range(8)] + ["gpu-0-mig-1g-5gb-3"]  # per node, before the claim


def _inventory() -> Inventory:
    state = Path(tempfile.mkdtemp(prefix="bench-alloc-")) / "dgx-a100.json"
    SimulatedMachine.create(state, "dgx-a100").activate()
    with Nvml() as nvml:
        return discover(nvml)


def _slices(inv: Inventory, nodes: list[str], mode: GpuMode) -> list[Obj]:
    modes = {g.index: mode for g in inv.gpus}
    return [s for n in nodes for s in render(build_pool(inv, modes, Capabilities(), D, n), 1, "v1")]


def _claim(device_class: str, *selectors: str) -> Obj:
    exactly: Obj = {"deviceClassName": f"{device_class}.dra-driver.dev", "count": 1}
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": s}} for s in selectors]
    return {
        "metadata": {"name": "c", "namespace": "bench"},
        "spec": {"devices": {"requests": [{"name": "r", "exactly": exactly}]}},
    }


def _held(nodes: list[str]) -> list[Obj]:
    results = [{"request": "r", "driver": D, "pool": n, "device": d} for n in nodes for d in HELD]
    return [{"metadata": {"name": "held"}, "status": {"allocation": {"devices": {"results": results}}}}]


def _best(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: CEL programs compiled, device activations built
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _filter(cluster: ClusterState, claim: Obj, nodes: list[Node]) -> None:
    for node in nodes:
        if isinstance(allocate(cluster, claim, node), Unsatisfiable):
            raise SystemExit(f"bench setup is wrong: the claim does not fit on {node.name}")


def _first(cluster: ClusterState, claim: Obj, nodes: list[Node]) -> float:
    fresh = dataclasses.replace(cluster)  # same slices, nothing remembered
    start = time.perf_counter()
    _filter(fresh, claim, nodes)
    return time.perf_counter() - start


def _class_scan(cluster: ClusterState, expression: str) -> None:
    selector = compile_selector(expression)
    for s in cluster.slices:
        for d in s.devices:
            selector.matches(d.view)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    inv = _inventory()
    names = [f"node-{i:03d}" for i in range(args.nodes)]
    nodes = [Node(n, {"kubernetes.io/hostname": n}) for n in names]
    start = time.perf_counter()
    whole_slices, mig_slices = _slices(inv, names, Whole()), _slices(inv, names, Mig())
    built = time.perf_counter() - start
    start = time.perf_counter()
    whole = cluster_state(whole_slices, CLASSES)
    mig = cluster_state(mig_slices, CLASSES, _held(names))
    parsed = time.perf_counter() - start
    devices = sum(len(s.devices) for s in whole.slices) + sum(len(s.devices) for s in mig.slices)
    print(
        f"{args.nodes} nodes x 8 GPUs: {devices} devices (whole + MIG clusters) built by the driver in {built:.2f} s,"
        f" parsed by cluster_state in {parsed:.2f} s ({parsed / devices * 1e6:.0f} us per device)"
    )
    one_whole = cluster_state(_slices(inv, names[:1], Whole()), CLASSES)
    one_mig = cluster_state(_slices(inv, names[:1], Mig()), CLASSES, _held(names[:1]))
    selector = (
        f'device.capacity["{D}"].memory.compareTo(quantity("40Gi")) >= 0'
        f' && device.attributes["{D}"].productName.startsWith("NVIDIA A100")'
    )
    shapes = [
        ("whole GPU", whole, one_whole, _claim("gpu")),
        ("MIG 1g.5gb, 9 MIG devices held per node", mig, one_mig, _claim("mig-1g-5gb")),
        ("CEL selector (memory >= 40Gi, A100)", whole, one_whole, _claim("gpu", selector)),
    ]
    print(f"claims filtered against {args.nodes} nodes; (a) = class selector on every device, (b) = 1-node cluster")
    print(
        f"{'claim':42} {'filter':>10} {'claims/s':>9} {'nodes/s':>8} {'ms/node':>8} {'first':>10}"
        f" {'(a)':>10} {'x (a)':>6} {'(b)':>10} {'x (b)':>6}"
    )
    for label, cluster, single, claim in shapes:
        expression = CLASSES[claim["spec"]["devices"]["requests"][0]["exactly"]["deviceClassName"]]["spec"]
        scan = _best(partial(_class_scan, cluster, expression["selectors"][0]["cel"]["expression"]), args.repeat)
        t = _best(partial(_filter, cluster, claim, nodes), args.repeat)
        first = _first(cluster, claim, nodes)
        one = _best(partial(_filter, single, claim, nodes[:1] * args.nodes), args.repeat)
        print(
            f"{label:42} {t * 1e3:7.1f} ms {1 / t:9.2f} {args.nodes / t:8.0f} {t / args.nodes * 1e3:8.3f}"
            f" {first * 1e3:7.1f} ms {scan * 1e3:7.1f} ms {t / scan:6.2f} {one * 1e3:7.1f} ms {t / one:6.2f}"
        )


if __name__ == "__main__":
    main()
