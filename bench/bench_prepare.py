"""Prepare latency of the real kubelet plugin process, through gRPC on its unix socket.

1. Whole-GPU prepare + unprepare of 1000 claims, one claim per call (p50/p99), against a baseline of
   the same number of gRPC round trips to an empty in-process DRA server (transport cost alone).
2. Eight MIG claims on eight distinct GPUs of a DGX A100: prepared in one concurrent batch vs one after
   another (per-GPU locks let them run in parallel).

Runs its own private control plane (claims are real ResourceClaims the plugin GETs). Prints numbers.
    .venv/bin/python -m bench.bench_prepare [--claims 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from api.gen.dra.v1 import api_pb2_grpc
from api.partitioning import Mig, Whole
from dra_driver.k8s import Kube
from dra_driver.kubeletplugin import protocol as proto
from e2e.plugin_node import DRIVER, PluginNode
from sandbox.binaries import find_or_build
from sandbox.controlplane import ControlPlane
from sandbox.nodes import register_node

R = "/apis/resource.k8s.io/v1"


def _allocated_claim(kube: Kube, node: str, device: str) -> proto.ClaimRef:
    """A claim with an allocation written directly (no scheduler needed for a latency benchmark)."""
    name = f"c-{uuid.uuid4().hex[:8]}"
    claim = kube.create(
        f"{R}/namespaces/default/resourceclaims",
        {
            "metadata": {"name": name},
            "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "bench"}}]}},
        },
    )
    claim["status"] = {
        "allocation": {"devices": {"results": [{"request": "gpu", "driver": DRIVER, "pool": node, "device": device}]}}
    }
    kube.replace(f"{R}/namespaces/default/resourceclaims/{name}/status", claim)
    return proto.ClaimRef("default", claim["metadata"]["uid"], name)


def _pct(samples: list[float], p: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(len(samples) * p))] * 1e3


def _baseline(n: int, sock: Path) -> list[float]:
    class Empty(api_pb2_grpc.DRAPluginServicer):  # type: ignore[misc]
        def NodePrepareResources(self, request: Any, context: Any) -> Any:
            return proto.prepare_response(proto.DRA_V1, {c.uid: proto.PrepareResult() for c in request.claims})

    server = grpc.server(futures.ThreadPoolExecutor(4))
    api_pb2_grpc.add_DRAPluginServicer_to_server(Empty(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    stub = api_pb2_grpc.DRAPluginStub(grpc.insecure_channel(f"unix://{sock}"))  # type: ignore[no-untyped-call]
    ref = proto.ClaimRef("default", "u", "n")
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        stub.NodePrepareResources(proto.prepare_request(proto.DRA_V1, [ref]))
        samples.append(time.perf_counter() - t)
    server.stop(None)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prep-", dir="/tmp") as tmp:
        work = Path(tmp)
        with ControlPlane(work / "cp", find_or_build(print)) as cp:
            kube = Kube.from_kubeconfig(cp.kubeconfig)
            kube.create(f"{R}/deviceclasses", {"metadata": {"name": "bench"}, "spec": {}})
            api = kube.api_client
            base = _baseline(args.claims, work / "base.sock")
            print(
                f"baseline: empty gRPC prepare round trip  p50 {_pct(base, 0.5):6.2f} ms  p99 {_pct(base, 0.99):6.2f} ms"
            )

            register_node(api, "whole-node")
            whole = PluginNode.create("whole-node", cp.kubeconfig, "dgx-a100", Whole(), root=work / "w")
            whole.start(kube)
            stub = api_pb2_grpc.DRAPluginStub(grpc.insecure_channel(f"unix://{whole.dra_socket()}"))  # type: ignore[no-untyped-call]
            refs = [_allocated_claim(kube, "whole-node", f"gpu-{i % 8}") for i in range(args.claims)]
            prep, unprep = [], []
            for ref in refs:
                t = time.perf_counter()
                res = proto.prepare_results_from_pb(
                    stub.NodePrepareResources(proto.prepare_request(proto.DRA_V1, [ref]))
                )
                prep.append(time.perf_counter() - t)
                assert res[ref.uid].error == "", res[ref.uid].error
                t = time.perf_counter()
                stub.NodeUnprepareResources(proto.unprepare_request(proto.DRA_V1, [ref]))
                unprep.append(time.perf_counter() - t)
            print(
                f"whole-GPU prepare   ({args.claims} claims)  p50 {_pct(prep, 0.5):6.2f} ms  p99 {_pct(prep, 0.99):6.2f} ms"
                f"  ({statistics.median(prep) / statistics.median(base):4.1f}x baseline)"
            )
            print(
                f"whole-GPU unprepare ({args.claims} claims)  p50 {_pct(unprep, 0.5):6.2f} ms  "
                f"p99 {_pct(unprep, 0.99):6.2f} ms"
            )
            whole.stop()

            register_node(api, "mig-node")
            node = PluginNode.create("mig-node", cp.kubeconfig, "dgx-a100", Mig(), root=work / "m")
            node.start(kube)
            stub = api_pb2_grpc.DRAPluginStub(grpc.insecure_channel(f"unix://{node.dra_socket()}"))  # type: ignore[no-untyped-call]
            for label, concurrent in (("one after another", False), ("concurrently (one batch)", True)):
                refs = [_allocated_claim(kube, "mig-node", f"gpu-{i}-mig-3g-20gb-4") for i in range(8)]
                t = time.perf_counter()
                if concurrent:
                    res = proto.prepare_results_from_pb(
                        stub.NodePrepareResources(proto.prepare_request(proto.DRA_V1, refs))
                    )
                else:
                    res = {}
                    for ref in refs:
                        res.update(
                            proto.prepare_results_from_pb(
                                stub.NodePrepareResources(proto.prepare_request(proto.DRA_V1, [ref]))
                            )
                        )
                took = time.perf_counter() - t
                assert all(r.error == "" for r in res.values()), res
                print(f"8 MIG 3g.20gb claims on 8 GPUs, {label:26}: {took * 1e3:7.1f} ms")
                stub.NodeUnprepareResources(proto.unprepare_request(proto.DRA_V1, refs))
            node.stop()


if __name__ == "__main__":
    main()
