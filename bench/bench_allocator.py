"""Our allocator (``dra_driver.structured``) against kube-scheduler's (Go, ``structured`` v0.37.2), same inputs.

One claim filtered against the first N of the simulated DGX A100 nodes (``bench.alloc_inputs``), one
allocation per node, as one scheduling cycle's Filter. Both sides get the same slices, classes, allocated
claims and claim; the Go program (``bench/go/allocator``, built into the cache on the first run) reads them
from a JSON file this bench writes, and runs ``NewAllocator`` once per claim and ``Allocate`` per node, as
kube-scheduler does. Ours, to match, parses the claim once and allocates on a new ``ClusterState`` of the
already-parsed slices per pass, so the slice index, pools and counters are built again in every pass
("ours"); "warm" reuses one ``ClusterState`` (what a long-lived caller pays from its second claim on).
Times are the best of ``--repeat`` passes after one warm-up pass, on both sides; every node must take the
claim, or the bench stops. Also: the time to parse the largest MIG cluster into a ``ClusterState``, and
the analysis of ``dra-gpu explain`` for one pod on it (parse + every node's report + the table; the API
reads are not counted). Prints a table; ``--json`` prints one JSON object instead (docs/benchmarks.md).

    .venv/bin/python -m bench.bench_allocator [--nodes 100,500,1000] [--repeat 3] [--json] [--no-go]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench import alloc_gobuild
from bench.alloc_inputs import CLASSES, KINDS, Cluster, clusters, go_input, inventory
from controller.explain.analysis import Inputs, analyse, collector_off
from controller.explain.report import render_table
from dra_driver.structured import Allocation, ClusterState, Node, allocate, cluster_state, parse_claim
from dra_driver.structured.model import Claim

Table = dict[str, dict[str, float]]  # claim kind -> node count (a string, for JSON) -> value


def _best(fns: Mapping[int, Callable[[], object]], repeat: int) -> dict[int, tuple[float, float]]:
    """Per key, (least wall-clock ms, least CPU ms) of ``repeat`` passes after one warm-up pass. The keys'
    passes take turns (pass r of every key before pass r + 1 of any), so a spell of load on the machine
    falls on every node count alike and the per-node costs compare."""
    for fn in fns.values():
        fn()  # warm-up: CEL programs compiled, device views built
    best = {key: (float("inf"), float("inf")) for key in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            best[key] = (min(best[key][0], wall), min(best[key][1], cpu))
    return {key: (wall * 1e3, cpu * 1e3) for key, (wall, cpu) in best.items()}


def _filter(cluster: ClusterState, claim: Claim, nodes: Sequence[Node]) -> None:
    for node in nodes:
        if not isinstance(outcome := allocate(cluster, claim, node), Allocation):
            raise SystemExit(f"bench setup is wrong: the claim does not fit on {node.name}: {outcome}")


def _chosen(cluster: ClusterState, claim: Claim, nodes: Sequence[Node]) -> dict[str, list[str]]:
    """node -> "pool/device" per result: what ours allocates, to compare with the Go program's choice."""
    chosen = {}
    for node in nodes:
        outcome = allocate(cluster, claim, node)
        assert isinstance(outcome, Allocation)  # _filter ran first
        chosen[node.name] = [f"{r.pool}/{r.device}" for r in outcome.claims[0].results]
    return chosen


def _fresh(parsed: ClusterState, claim: Claim, nodes: Sequence[Node]) -> None:
    _filter(ClusterState(parsed.slices, parsed.classes, parsed.allocated), claim, nodes)


def ours(
    parsed: Mapping[str, ClusterState], data: Mapping[str, Cluster], counts: Sequence[int], repeat: int
) -> dict[str, Any]:
    """Per claim kind and node count, in ms: a pass on a new ClusterState (wall, CPU) and on a reused one;
    and under "chosen" the devices allocated on each node."""
    out: dict[str, Any] = {"alloc_ms": {}, "alloc_cpu_ms": {}, "alloc_warm_ms": {}, "chosen": {}}
    for kind in KINDS:
        claim, whole, c = parse_claim(kind.claim), parsed[kind.cluster], data[kind.cluster]
        cases = {
            n: (
                ClusterState(whole.slices[: c.per_node * n], whole.classes, whole.allocated),
                [Node(name, {"kubernetes.io/hostname": name}) for name in c.nodes[:n]],
            )
            for n in counts
        }
        fresh = _best({n: partial(_fresh, state, claim, nodes) for n, (state, nodes) in cases.items()}, repeat)
        warm = _best({n: partial(_filter, state, claim, nodes) for n, (state, nodes) in cases.items()}, repeat)
        for n, (state, nodes) in cases.items():
            for key, value in (("alloc_ms", fresh[n][0]), ("alloc_cpu_ms", fresh[n][1]), ("alloc_warm_ms", warm[n][0])):
                out[key].setdefault(kind.key, {})[str(n)] = value
            out["chosen"].setdefault(kind.key, {})[str(n)] = _chosen(state, claim, nodes)
        per_node = {n: fresh[n][1] / n for n in counts}
        out.setdefault("per_node_growth", {})[kind.key] = per_node[counts[-1]] / per_node[counts[0]]
    return out


def go(data: Mapping[str, Cluster], counts: Sequence[int], repeat: int) -> dict[str, Any]:
    """The Go baseline on the same inputs, in ms: a pass (wall, CPU) and NewAllocator's part of it; and
    under "chosen" the devices it allocated on each node."""
    binary = alloc_gobuild.binary(lambda line: print(line, file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="bench-alloc-go-") as tmp:
        path = Path(tmp) / "input.json"
        go_input(path, data, counts)
        proc = subprocess.run(
            [str(binary), "-input", str(path), "-repeat", str(repeat)], capture_output=True, text=True, check=False
        )
    if proc.returncode != 0:
        raise SystemExit(f"the Go allocator baseline failed (exit code {proc.returncode}): {proc.stderr.strip()}")
    out: dict[str, Any] = {"go_alloc_ms": {}, "go_alloc_cpu_ms": {}, "go_new_allocator_ms": {}, "chosen": {}}
    for r in json.loads(proc.stdout)["results"]:
        for key, field in (
            ("go_alloc_ms", "ms"),
            ("go_alloc_cpu_ms", "cpu_ms"),
            ("go_new_allocator_ms", "new_allocator_ms"),
        ):
            out[key].setdefault(r["kind"], {})[str(r["nodes"])] = r[field]
        out["chosen"].setdefault(r["kind"], {})[str(r["nodes"])] = r["chosen"]
    return out


def explain_seconds(c: Cluster) -> tuple[float, float]:
    """``dra-gpu explain`` of one pod with the MIG claim on every node of ``c``, table output, minus the API
    reads: (wall, CPU) s."""
    kind = next(k for k in KINDS if k.cluster == c.name)
    pod = {
        "metadata": {"name": "p", "namespace": "bench"},
        "spec": {"resourceClaims": [{"name": "r", "resourceClaimName": "c"}]},
    }
    nodes = tuple({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}} for n in c.nodes)
    # objects of their own, decoded from JSON as `dra-gpu explain` gets them from the API server (not timed):
    # the dicts parsed before in this process carry their strings' hashes, which makes a second parse cheaper
    slices, allocated = json.loads(json.dumps([c.slices, c.allocated]))
    inputs = Inputs("pod bench/p", (kind.claim,), tuple(slices), tuple(CLASSES), tuple(allocated), nodes, pod)
    start, start_cpu = time.perf_counter(), time.process_time()
    with collector_off():  # as `dra-gpu explain` runs it (cli.explain.run), table output
        report = analyse(inputs, detail=False)
        render_table(report)
    took = time.perf_counter() - start, time.process_time() - start_cpu
    if len(report.nodes) != len(c.nodes) or any(r.verdict != "allocatable" for r in report.nodes):
        raise SystemExit("bench setup is wrong: explain does not find the claim allocatable on every node")
    return took


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="100,500,1000", help="comma-separated node counts (default 100,500,1000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per case, after one warm-up")
    parser.add_argument("--json", action="store_true", help="print one JSON object (keys: docs/benchmarks.md)")
    parser.add_argument("--no-go", action="store_true", help="skip the Go baseline (go_alloc_ms is then null)")
    parser.add_argument("--no-explain", action="store_true", help="skip the explain timing (explain_s is null)")
    args = parser.parse_args(argv)
    try:
        counts = sorted({int(n) for n in args.nodes.split(",")})
    except ValueError:
        parser.error(f"--nodes: {args.nodes!r} is not a comma-separated list of node counts")
    if counts[0] < 1 or args.repeat < 1:
        parser.error("--nodes: counts must be at least 1; --repeat: at least 1")
    log = (lambda _: None) if args.json else print
    data = clusters(inventory(), counts[-1])
    start, start_cpu = time.perf_counter(), time.process_time()
    mig = cluster_state(data["mig"].slices, CLASSES, data["mig"].allocated)
    build_s, build_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    devices = sum(len(s.devices) for s in mig.slices)
    log(f"state for {counts[-1]} MIG nodes ({devices} devices) built in {build_s:.2f} s")
    parsed = {"mig": mig, "whole": cluster_state(data["whole"].slices, CLASSES, data["whole"].allocated)}
    mine = ours(parsed, data, counts, args.repeat)
    theirs = go(data, counts, args.repeat) if not args.no_go else {}
    explain = None if args.no_explain else explain_seconds(data["mig"])
    mine_chosen, theirs_chosen = mine.pop("chosen"), theirs.pop("chosen", None)
    result: dict[str, Any] = {
        "nodes": counts,
        "repeat": args.repeat,
        "load_average": _load(),
        **mine,
        "go_alloc_ms": None,
        "go_alloc_cpu_ms": None,
        "go_new_allocator_ms": None,
        **theirs,
        # per kind and node count: did ours allocate the same devices on every node as the Go allocator
        "same_devices_as_go": None
        if theirs_chosen is None
        else {k: {n: mine_chosen[k][n] == theirs_chosen[k][n] for n in by_n} for k, by_n in mine_chosen.items()},
        "state_build_s": build_s,
        "state_build_cpu_s": build_cpu_s,
        "state_build_devices": devices,
        "explain_s": explain[0] if explain else None,
        "explain_cpu_s": explain[1] if explain else None,
    }
    if args.json:
        print(json.dumps(result))
        return
    _table(result, counts)


def _table(r: Mapping[str, Any], counts: Sequence[int]) -> None:
    go_ms, go_cpu = r["go_alloc_ms"] or {}, r["go_alloc_cpu_ms"] or {}
    print(f"load average {r['load_average']}; best of {r['repeat']} passes; ms per pass over N nodes (CPU ms per node)")
    print(f"{'claim':30} {'nodes':>5} {'ours':>17} {'warm':>8} {'Go':>17} {'ours/Go':>8} {'CPU':>6}")
    for kind in KINDS:
        for n in counts:
            wall, cpu = r["alloc_ms"][kind.key][str(n)], r["alloc_cpu_ms"][kind.key][str(n)]
            cells = [f"{kind.label:30} {n:5d} {wall:8.1f} ({cpu / n:.3f}) {r['alloc_warm_ms'][kind.key][str(n)]:8.1f}"]
            theirs, theirs_cpu = go_ms.get(kind.key, {}).get(str(n)), go_cpu.get(kind.key, {}).get(str(n))
            if theirs is not None and theirs_cpu is not None:
                cells.append(
                    f"{theirs:8.1f} ({theirs_cpu / n:.3f}) {wall / theirs:7.2f}x {cpu / max(theirs_cpu, 1e-3):5.2f}x"
                )
                cells.append("same devices" if r["same_devices_as_go"][kind.key][str(n)] else "DIFFERENT DEVICES")
            print(" ".join(cells))
    growth = ", ".join(f"{kind.key} {r['per_node_growth'][kind.key]:.2f}x" for kind in KINDS)
    print(f"CPU ms per node, {counts[-1]} nodes against {counts[0]}: {growth} (flat: 0.80-1.20x)")
    print(
        f"state for {counts[-1]} MIG nodes ({r['state_build_devices']} devices): {r['state_build_s']:.2f} s"
        f" ({r['state_build_cpu_s']:.2f} s CPU)"
    )
    if r["explain_s"] is not None:
        print(
            f"dra-gpu explain analysis, one pod on {counts[-1]} MIG nodes: {r['explain_s']:.2f} s"
            f" ({r['explain_cpu_s']:.2f} s CPU; API reads not counted)"
        )


if __name__ == "__main__":
    main()
