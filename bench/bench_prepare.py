"""Prepare latency and start-up of the real kubelet plugin process, against a Go plugin in the same run.

1. Whole-GPU prepare + unprepare of ``--claims`` claims, one claim per gRPC call (p50/p99), in turn call by
   call between our plugin, our plugin with ``--claim-device-status=false`` (no background status write: the
   same work as the Go baseline) and the Go baseline (bench/go/kubeletplugin: the upstream kubeletplugin
   helper GETs the claim, one checkpoint write with one fsync, one CDI spec), all driven by the same gRPC
   client; plus the same number of round trips to an empty in-process DRA server (transport cost alone).
2. Start-up on a dgx-h100 in MIG mode: process start -> registration socket -> complete pool of slices
   published -> GPU settings checked (``--startups`` times, median), and the plugin's RSS once published
   (bench/prep_startup.py). The claim benchmarks start timing once the settings check is done.
3. Eight MIG claims on eight distinct GPUs of a DGX A100: one concurrent batch vs one after another.

``--against PATH`` adds, to part 1, a fourth plugin run from another checkout (e.g. ``git worktree add /tmp/old
<commit>``), without the status write and in turn with the others: two versions of our plugin compared in one
run, where a small change would be lost in the spread between runs.

Runs its own private control plane (claims are real ResourceClaims the plugins GET). Prints a table; with
``--json`` one JSON object instead (keys in docs/benchmarks.md).
    .venv/bin/python -m bench.bench_prepare [--claims 300] [--startups 3] [--against PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from api.gen.dra.v1 import api_pb2, api_pb2_grpc
from api.partitioning import Mig, Whole
from bench.prep_peer import GoPlugin
from bench.prep_startup import measure, settings_checked
from dra_driver.h2grpc.call import Call, Method
from dra_driver.h2grpc.server import Server, method_path
from dra_driver.k8s import Kube
from dra_driver.kubeletplugin import protocol as proto
from dra_driver.kubeletplugin.validation import MAX_MESSAGE_BYTES
from e2e.plugin_node import DRIVER, PluginNode
from e2e.wait import until
from sandbox.binaries import find_or_build
from sandbox.controlplane import ControlPlane
from sandbox.nodes import register_node

R = "/apis/resource.k8s.io/v1"
POD_RUN_S = 0.02  # between a claim's prepare (its status write landed) and its unprepare, for every plugin
Stub = Any  # api_pb2_grpc.DRAPluginStub (untyped generated code)


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


def _ms(samples: list[float], p: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(len(samples) * p))] * 1e3


def _stub(socket: Path) -> Stub:
    return api_pb2_grpc.DRAPluginStub(grpc.insecure_channel(f"unix://{socket}"))  # type: ignore[no-untyped-call]


def _baseline(n: int, sock: Path) -> list[float]:
    """``n`` round trips to an empty DRA server on the plugin's own transport (dra_driver.h2grpc), run in this
    process: what the gRPC call alone costs."""

    def empty(request: Any, call: Call) -> Any:
        return proto.prepare_response(proto.DRA_V1, {c.uid: proto.PrepareResult() for c in request.claims})

    path = method_path(api_pb2, "DRAPlugin", "NodePrepareResources")
    server = Server(sock, {path: Method(api_pb2.NodePrepareResourcesRequest, empty)}, MAX_MESSAGE_BYTES, 4)
    server.start()
    stub = _stub(sock)
    ref = proto.ClaimRef("default", "u", "n")
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        stub.NodePrepareResources(proto.prepare_request(proto.DRA_V1, [ref]))
        samples.append(time.perf_counter() - t)
    server.stop(0)
    return samples


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    result = call()
    return time.perf_counter() - t, result


def _status_written(kube: Kube, ref: proto.ClaimRef) -> bool:
    claim = kube.get(f"{R}/namespaces/{ref.namespace}/resourceclaims/{ref.name}") or {}
    return bool(claim.get("status", {}).get("devices"))


def _prepare_cycle(
    stub: Stub,
    ref: proto.ClaimRef,
    prep: list[float],
    unprep: list[float],
    status: Callable[[], bool] | None = None,
    visible: list[float] | None = None,
) -> None:
    """One prepare and one unprepare of ``ref``; with ``status``, the unprepare waits until it is true (the
    status write has landed, as it has long before a real pod ends) and ``visible`` gets when that was. Every
    plugin's claim then "runs" ``POD_RUN_S`` before its unprepare, so the API server's handling of what came
    before (a status write and its watchers, this bench's own polling) has settled, as it has when a pod ends."""
    t = time.perf_counter()
    took, pb = _timed(lambda: stub.NodePrepareResources(proto.prepare_request(proto.DRA_V1, [ref]), timeout=30))
    answer = proto.prepare_results_from_pb(pb)[ref.uid]
    assert answer.error == "" and answer.devices, answer
    prep.append(took)
    if status is not None and visible is not None:
        until(status, "the claim's status.devices", timeout=30, interval=0.002)
        visible.append(time.perf_counter() - t)
    time.sleep(POD_RUN_S)
    took, pb = _timed(lambda: stub.NodeUnprepareResources(proto.unprepare_request(proto.DRA_V1, [ref]), timeout=30))
    assert proto.unprepare_errors_from_pb(pb)[ref.uid] == ""
    unprep.append(took)


def _whole_gpu(kube: Kube, cp: ControlPlane, work: Path, claims: int, against: Path | None) -> dict[str, Any]:
    """Ours, ours without the status write, the Go plugin (and, ``against``, ours without the status write from
    that checkout), call by call in turn, on the same kind of claims."""
    api = kube.api_client
    nodes = {"ours": "whole-node", "nostatus": "nostatus-node", "go": "go-node"}
    if against is not None:
        nodes["against"] = "against-node"
    sim = [register_node(api, name) for name in nodes.values()]
    # MIG mode off: a whole GPU is then prepared without touching the hardware, the Go plugin's work (with MIG
    # mode on, ours would create the GPU's full-size MIG instance for each claim)
    plugins = {
        who: PluginNode.create(nodes[who], cp.kubeconfig, "dgx-a100", Whole(), root=work / who, mig_enabled=False)
        for who in nodes
        if who != "go"
    }
    no_status = ("--claim-device-status", "false")  # the same work as the Go plugin
    peer: GoPlugin | None = None
    try:
        for who, plugin in plugins.items():
            plugin.start(kube, extra=() if who == "ours" else no_status, code=against if who == "against" else None)
        for plugin in plugins.values():  # steady state only
            until(lambda p=plugin: settings_checked(p), "the plugin's start-up GPU settings check")
        peer = GoPlugin.start(work / "go", cp.kubeconfig, DRIVER, "go-node")
        stubs = {who: _stub(p.dra_socket()) for who, p in plugins.items()} | {"go": _stub(peer.dra_socket)}
        refs = {k: [_allocated_claim(kube, nodes[k], f"gpu-{i % 8}") for i in range(claims)] for k in stubs}
        samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in stubs}
        visible: list[float] = []
        order = list(stubs)
        for i in range(claims):
            turn = i % len(order)
            for who in order[turn:] + order[:turn]:  # each plugin first, second, ... and last in turn
                ref = refs[who][i]
                status = (lambda r=ref: _status_written(kube, r)) if who == "ours" else None
                _prepare_cycle(stubs[who], ref, *samples[who], status=status, visible=visible)
        return {
            "samples": samples,
            "status_visible_p50_ms": round(_ms(visible, 0.5), 2),
            "go_rss_mb": round(peer.rss_mb(), 1),
            "go_startup_s": round(peer.started_s, 3),
        }
    finally:
        if peer is not None:
            peer.stop()
        for plugin in plugins.values():
            plugin.stop()
        for node in sim:
            node.stop()


def _mig_batches(kube: Kube, cp: ControlPlane, work: Path) -> dict[str, float]:
    sim = register_node(kube.api_client, "mig-node")
    node = PluginNode.create("mig-node", cp.kubeconfig, "dgx-a100", Mig(), root=work / "m")
    node.start(kube)
    until(lambda: settings_checked(node), "the plugin's start-up GPU settings check")
    stub = _stub(node.dra_socket())
    out = {}
    try:
        for key, concurrent in (("mig8_sequential_ms", False), ("mig8_concurrent_ms", True)):
            refs = [_allocated_claim(kube, "mig-node", f"gpu-{i}-mig-3g-20gb-4") for i in range(8)]
            t = time.perf_counter()
            res: dict[str, proto.PrepareResult] = {}
            for batch in [refs] if concurrent else [[r] for r in refs]:
                res.update(
                    proto.prepare_results_from_pb(stub.NodePrepareResources(proto.prepare_request(proto.DRA_V1, batch)))
                )
            out[key] = round((time.perf_counter() - t) * 1e3, 1)
            assert all(r.error == "" for r in res.values()), res
            stub.NodeUnprepareResources(proto.unprepare_request(proto.DRA_V1, refs))
    finally:
        node.stop()
        sim.stop()
    return out


def _startups(kube: Kube, cp: ControlPlane, work: Path, times: int) -> dict[str, Any]:
    results = []
    for i in range(times):
        name = f"h100-{i}"
        sim = register_node(kube.api_client, name)
        node = PluginNode.create(name, cp.kubeconfig, "dgx-h100", Mig(), root=work / name)
        try:
            results.append(measure(node, kube))
        finally:
            node.stop()
            sim.stop()
    return {
        "startup_registered_s": round(statistics.median(r.registered_s for r in results), 3),
        "startup_published_s": round(statistics.median(r.published_s for r in results), 3),
        "startup_acked_s": round(statistics.median(r.acked_s for r in results), 3),
        "startup_settings_s": round(statistics.median(r.settings_s for r in results), 3),
        "startup_devices": results[0].devices,
        "rss_mb": round(statistics.median(r.rss_mb for r in results), 1),
    }


def _against(r: dict[str, Any], samples: tuple[list[float], list[float]], against: Path) -> None:
    """The ``against`` plugin's figures, and ours without the status write over them."""
    prep, unprep = samples
    r["against"] = str(against)
    head = subprocess.run(["git", "-C", str(against), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    r["against_commit"] = head.stdout.strip() or None
    for key, values in (("prepare", prep), ("unprepare", unprep)):
        r[f"against_{key}_p50_ms"] = round(_ms(values, 0.5), 2)
        r[f"against_{key}_p99_ms"] = round(_ms(values, 0.99), 2)
        r[f"against_{key}_ratio"] = round(r[f"nostatus_{key}_p50_ms"] / r[f"against_{key}_p50_ms"], 3)


def run(claims: int, startups: int, against: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-prep-", dir="/tmp") as tmp:
        work = Path(tmp)
        with ControlPlane(work / "cp", find_or_build(lambda _: None)) as cp:
            kube = Kube.from_kubeconfig(cp.kubeconfig)
            kube.create(f"{R}/deviceclasses", {"metadata": {"name": "bench"}, "spec": {}})
            base = _baseline(claims, work / "base.sock")
            whole = _whole_gpu(kube, cp, work, claims, against)
            (prep, unprep), (go_prep, go_unprep) = whole["samples"]["ours"], whole["samples"]["go"]
            bare_prep, bare_unprep = whole["samples"]["nostatus"]
            out: dict[str, Any] = {
                "claims": claims,
                "load_1min": round(os.getloadavg()[0], 2),
                "grpc_baseline_p50_ms": round(_ms(base, 0.5), 2),
                "prepare_p50_ms": round(_ms(prep, 0.5), 2),
                "prepare_p99_ms": round(_ms(prep, 0.99), 2),
                "unprepare_p50_ms": round(_ms(unprep, 0.5), 2),
                "unprepare_p99_ms": round(_ms(unprep, 0.99), 2),
                "nostatus_prepare_p50_ms": round(_ms(bare_prep, 0.5), 2),
                "nostatus_prepare_p99_ms": round(_ms(bare_prep, 0.99), 2),
                "nostatus_unprepare_p50_ms": round(_ms(bare_unprep, 0.5), 2),
                "nostatus_unprepare_p99_ms": round(_ms(bare_unprep, 0.99), 2),
                "go_prepare_p50_ms": round(_ms(go_prep, 0.5), 2),
                "go_prepare_p99_ms": round(_ms(go_prep, 0.99), 2),
                "go_unprepare_p50_ms": round(_ms(go_unprep, 0.5), 2),
                "go_unprepare_p99_ms": round(_ms(go_unprep, 0.99), 2),
                "status_visible_p50_ms": whole["status_visible_p50_ms"],
                "go_rss_mb": whole["go_rss_mb"],
                "go_startup_s": whole["go_startup_s"],
            }
            out["prepare_ratio"] = round(out["prepare_p50_ms"] / out["go_prepare_p50_ms"], 2)
            out["unprepare_ratio"] = round(out["unprepare_p50_ms"] / out["go_unprepare_p50_ms"], 2)
            out["nostatus_prepare_ratio"] = round(out["nostatus_prepare_p50_ms"] / out["go_prepare_p50_ms"], 2)
            out["nostatus_unprepare_ratio"] = round(out["nostatus_unprepare_p50_ms"] / out["go_unprepare_p50_ms"], 2)
            if against is not None:
                _against(out, whole["samples"]["against"], against)
            out.update(_startups(kube, cp, work, startups))
            out.update(_mig_batches(kube, cp, work))
            out["load_1min_end"] = round(os.getloadavg()[0], 2)
            return out


def _row(r: dict[str, Any], label: str, key: str, ratio: str = "") -> str:
    row = f"{label:24}{r[key]:10.2f}{r['go_' + key]:10.2f}"
    row += f"{r[ratio]:7.2f}x" if ratio else " " * 8
    row += f"{r['nostatus_' + key]:11.2f}"
    return row + (f"{r['nostatus_' + ratio]:7.2f}x" if ratio else "")


def table(r: dict[str, Any]) -> str:
    rows = [
        f"whole-GPU, {r['claims']} claims, one per call (load {r['load_1min']} -> {r['load_1min_end']})",
        f"{'':24}{'ours':>10}{'Go':>10}{'ratio':>8}{'no status':>11}{'ratio':>8}",
        _row(r, "prepare p50 ms", "prepare_p50_ms", "prepare_ratio"),
        _row(r, "prepare p99 ms", "prepare_p99_ms"),
        _row(r, "unprepare p50 ms", "unprepare_p50_ms", "unprepare_ratio"),
        _row(r, "unprepare p99 ms", "unprepare_p99_ms"),
        "(no status: ours with --claim-device-status=false, the same work as the Go plugin; ours unprepares once its",
        f" status write has landed: prepare call -> status.devices visible p50 {r['status_visible_p50_ms']:.2f} ms)",
        *_against_rows(r),
        f"{'empty gRPC call p50 ms':24}{r['grpc_baseline_p50_ms']:10.2f}",
        f"start-up, dgx-h100 MIG ({r['startup_devices']} devices), median:",
        f"  -> registered {r['startup_registered_s']:.3f} s   -> slices published {r['startup_published_s']:.3f} s"
        f" (the plugin's last write answered {r['startup_acked_s']:.3f} s)"
        f"   -> GPU settings checked {r['startup_settings_s']:.3f} s",
        f"  RSS ours {r['rss_mb']:.1f} MB, Go plugin {r['go_rss_mb']:.1f} MB (Go start -> socket {r['go_startup_s']:.3f} s)",
        f"8 MIG 3g.20gb claims on 8 GPUs: one after another {r['mig8_sequential_ms']:.1f} ms, "
        f"one batch {r['mig8_concurrent_ms']:.1f} ms",
    ]
    return "\n".join(rows)


def _against_rows(r: dict[str, Any]) -> list[str]:
    if "against" not in r:
        return []
    name = r["against_commit"] or r["against"]
    return [
        f"against {name} (no status, in turn with the others): prepare p50 {r['against_prepare_p50_ms']:.2f} ms,"
        f" p99 {r['against_prepare_p99_ms']:.2f}; unprepare p50 {r['against_unprepare_p50_ms']:.2f} ms",
        f" ours without status over it: prepare {r['against_prepare_ratio']:.3f}x,"
        f" unprepare {r['against_unprepare_ratio']:.3f}x",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--startups", type=int, default=3)
    parser.add_argument("--against", type=Path, help="also run the plugin of this checkout (a worktree of a commit)")
    parser.add_argument("--json", action="store_true", help="one JSON object (keys in docs/benchmarks.md)")
    args = parser.parse_args()
    if args.claims < 1 or args.startups < 1:
        parser.error("--claims and --startups must be at least 1")
    if args.against is not None and not (args.against / "kubelet_plugin" / "__main__.py").is_file():
        parser.error(f"--against {args.against}: not a checkout of this project (no kubelet_plugin/__main__.py)")
    result = run(args.claims, args.startups, args.against)
    print(json.dumps(result) if args.json else table(result))


if __name__ == "__main__":
    main()
