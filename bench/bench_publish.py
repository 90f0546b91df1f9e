"""Publishing ResourceSlices to a real API server (the sandbox's control plane, started privately).

1. A simulated DGX H100 in ``mig`` mode: writes and wall time of the first publish and of a republish.
2. 1000 simulated nodes (DGX H100, ``whole`` mode) published from one process with a thread pool,
   against a baseline of plain sequential POSTs of the same objects in the same run.

Prints numbers; asserts nothing.   .venv/bin/python -m bench.bench_publish [--nodes 1000] [--threads 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from api.partitioning import Mig, Whole
from dra_driver.k8s import Kube
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from dra_driver.resourceslice.probe import probe
from dra_driver.resourceslice.publisher import SlicePublisher
from dra_driver.resourceslice.render import render
from dra_driver.slices.builder import build_pool
from nvml_sim.control import SimulatedMachine
from sandbox.binaries import find_or_build
from sandbox.controlplane import ControlPlane

DRIVER = "gpu.dra-driver.dev"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        work = Path(tmp)
        SimulatedMachine.create(work / "m.json", "dgx-h100").activate()
        with Nvml() as nvml:
            inv = discover(nvml)
        with ControlPlane(work / "cp", find_or_build(print)) as cp:
            kube = Kube.from_kubeconfig(cp.kubeconfig)
            caps = probe(kube)
            print(f"control plane up in {cp.startup_seconds:.1f} s; capabilities: {caps}")

            pool = build_pool(inv, {g.index: Mig() for g in inv.gpus}, caps, DRIVER, "dgx-h100-0")
            publisher = SlicePublisher(kube, caps, DRIVER, "dgx-h100-0")
            for label in ("first publish", "republish (unchanged)"):
                start = time.perf_counter()
                result = publisher.publish(pool)
                took = time.perf_counter() - start
                print(
                    f"dgx-h100 mig, {label:22}: {result.writes} writes, {len(pool.devices())} devices in "
                    f"{len(pool.slices)} slices, {took * 1e3:7.1f} ms"
                )

            whole = {g.index: Whole() for g in inv.gpus}
            pools = [build_pool(inv, whole, caps, DRIVER, f"node-{i:04d}") for i in range(args.nodes)]
            objects = [
                render(build_pool(inv, whole, caps, DRIVER, f"base-{i:04d}"), 1, caps.api_version)[0]
                for i in range(args.nodes)
            ]
            base = f"/apis/resource.k8s.io/{caps.api_version}/resourceslices"
            start = time.perf_counter()
            for obj in objects:
                kube.create(base, obj)
            baseline = time.perf_counter() - start
            print(f"baseline: {args.nodes} plain sequential POSTs: {baseline:6.2f} s ({args.nodes / baseline:6.0f}/s)")

            def publish(p: object) -> int:
                return SlicePublisher(kube, caps, DRIVER, p.node).publish(p).writes  # type: ignore[attr-defined]

            for label in ("publish", "republish"):
                start = time.perf_counter()
                with ThreadPoolExecutor(args.threads) as ex:
                    writes = sum(ex.map(publish, pools))
                took = time.perf_counter() - start
                print(
                    f"{args.nodes} nodes {label:9} ({args.threads} threads): {writes:5d} writes in {took:6.2f} s "
                    f"({args.nodes / took:6.0f} nodes/s, {took / baseline:4.2f}x baseline)"
                )


if __name__ == "__main__":
    main()
