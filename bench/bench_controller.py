"""One controller decision for 500 simulated DGX A100 nodes (8 GPUs each) and 100 pending claims.

Slices are built in memory by the driver's ``build_pool`` (no API server), every GPU in whole mode; on each
node 7 GPUs hold an allocated whole-GPU claim and one is idle. 100 pods wait, one claim each: 70 for a
time-slice replica, 30 for a MIG 1g.5gb device. The decision (``controller.planner.decide``) places what the
scheduler could already place, scores every (GPU, mode) candidate and verifies the best on their node, up to
``--max-changes`` changes. Run with partitionable devices (MIG per claim) and without (static MIG layouts).

Prints the time of each decision (best of ``--repeat``) and what it decided; asserts nothing.

    .venv/bin/python -m bench.bench_controller [--nodes 500] [--claims 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from controller.planner import Decision, Policy, World, decide
from controller.planner.policy import OPT_IN_LABEL
from dra_driver.classes import class_name, device_classes
from dra_driver.inventory import Inventory
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.render import render
from dra_driver.slices.builder import build_pool
from nvml_sim.control import SimulatedMachine

D = "gpu.dra-driver.dev"
T0 = "2026-01-01T00:00:00Z"
NOW = 1767225600.0 + 3600
Obj = dict[str, Any]


def _inventory() -> Inventory:
    state = Path(tempfile.mkdtemp(prefix="bench-controller-")) / "dgx-a100.json"
    SimulatedMachine.create(state, "dgx-a100", mig_enabled=False).activate()
    with Nvml() as nvml:
        return discover(nvml)


def _meta(name: str) -> Obj:
    return {"name": name, "namespace": "bench", "creationTimestamp": T0}


def _claim(name: str, kind: str) -> Obj:
    request = {"name": "r", "exactly": {"deviceClassName": class_name(kind), "count": 1}}
    return {"metadata": _meta(name), "spec": {"devices": {"requests": [request]}}}


def world(nodes: int, claims: int, caps: Capabilities) -> World:
    inv = _inventory()
    names = [f"node-{i:04d}" for i in range(nodes)]
    slices = [s for n in names for s in render(build_pool(inv, {}, caps, D, n), 1, "v1")]
    held = []
    for n in names:
        for g in range(1, 8):
            c = _claim(f"{n}-held-{g}", "gpu")
            result = {"request": "r", "driver": D, "pool": n, "device": f"gpu-{g}"}
            held.append({**c, "status": {"allocation": {"devices": {"results": [result]}}}})
    pending, pods = [], []
    for i in range(claims):
        kind = "timeslice" if i < claims * 7 // 10 else "mig-1g-5gb"
        pending.append(_claim(f"wait-{i}", kind))
        spec = {"resourceClaims": [{"name": "c", "resourceClaimName": f"wait-{i}"}]}
        pods.append({"metadata": _meta(f"pod-{i}"), "spec": spec, "status": {"phase": "Pending"}})
    labels = {n: {OPT_IN_LABEL: "true"} for n in names}
    return World(labels, slices, device_classes(D, caps), held + pending, pods, (), caps, D)


def _summary(d: Decision) -> str:
    served = sum(len(c.claims) for c in d.changes)
    modes = sorted({str(c.target) for c in d.changes})
    return f"{len(d.changes)} changes ({', '.join(modes)}) serving {served} claims; {len(d.unhelped)} not helped"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--claims", type=int, default=100)
    parser.add_argument("--max-changes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    policy = Policy(max_changes_per_interval=args.max_changes)
    for label, caps in (
        ("partitionable devices", Capabilities()),
        ("no partitionable devices (static MIG)", replace(Capabilities(), partitionable_devices=False)),
    ):
        w = world(args.nodes, args.claims, caps)
        best, decision = float("inf"), None
        for _ in range(args.repeat):
            start = time.perf_counter()
            decision = decide(w, policy, NOW)
            best = min(best, time.perf_counter() - start)
        assert decision is not None
        print(f"{label}: {args.nodes} nodes x 8 GPUs, {args.claims} pending claims: {best:.3f} s; {_summary(decision)}")


if __name__ == "__main__":
    main()
