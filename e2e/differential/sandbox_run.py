"""Run one scenario against the sandbox: the real kube-scheduler's verdict next to ours.

1. register a simulated node (no kubelet, no plugin: pods stay Pending once scheduled), publish its slices;
2. create the pinned claims and one pod each, wait until the scheduler allocated every one;
3. create the new claims (not yet used by a pod), read back the node's slices, the DeviceClasses and every
   allocated claim, and ask ``allocate_claims`` on the server's copies;
4. create the pod using the new claims; the scheduler's verdict is ``allocated`` once all its claims are,
   ``unschedulable`` when PodScheduled=False/Unschedulable names a DRA reason and nothing gets allocated
   within ``settle`` seconds, ``error`` for PodScheduled=False/SchedulerError; a pod the device taint
   eviction controller deleted was allocated first (``EVICTED``: its results are gone);
5. check both allocations with ``checker`` and delete everything (pods with grace period 0).

All scenarios of a run share one namespace and one ``Poller`` that lists its pods and claims a few times a
second, so that many scenarios can wait in parallel without flooding the API server.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubernetes.client import ApiClient

from dra_driver.inventory import Inventory
from dra_driver.k8s import ApiError, Kube
from dra_driver.structured import Allocation, Failed, Outcome, allocate_claims, cluster_state, parse_node
from e2e.differential import checker, machines
from e2e.differential.scenarios import Scenario
from sandbox.nodes import register_node

R = "/apis/resource.k8s.io/v1"
Obj = dict[str, Any]
T = TypeVar("T")
EVICTED = "allocated, then evicted for an untolerated NoExecute device taint"
DRA_MESSAGES = ("cannot allocate all claims", "resource pools", "device class", "allocate")


class Poller:
    """Pods and ResourceClaims of one namespace, refreshed every ``interval`` seconds; waiters are woken."""

    def __init__(self, kube: Kube, namespace: str, interval: float = 0.3) -> None:
        self.kube, self.namespace, self.interval = kube, namespace, interval
        self.pods: dict[str, Obj] = {}
        self.claims: dict[str, Obj] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="differential-poller", daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                pods = self.kube.list(f"/api/v1/namespaces/{self.namespace}/pods")
                claims = self.kube.list(f"{R}/namespaces/{self.namespace}/resourceclaims")
            except ApiError:
                continue
            with self._cond:
                self.pods = {p["metadata"]["name"]: p for p in pods}
                self.claims = {c["metadata"]["name"]: c for c in claims}
                self._cond.notify_all()

    def wait(self, check: Callable[[Poller], T | None], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if (found := check(self)) is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
                self._cond.wait(remaining)


@dataclass(frozen=True)
class Context:
    kube: Kube
    api: ApiClient
    namespace: str
    poller: Poller
    inventories: Mapping[str, Inventory]
    classes: Mapping[str, Obj]  # DeviceClasses as read back from the API server
    settle: float = 5.0
    timeout: float = 120.0


@dataclass
class Record:
    scenario: Scenario
    ours: str = ""  # allocated | unschedulable | error
    theirs: str = ""
    our_message: str = ""
    their_message: str = ""
    our_results: list[list[Obj]] = field(default_factory=list)
    their_results: list[list[Obj]] = field(default_factory=list)
    our_violations: list[str] = field(default_factory=list)
    their_violations: list[str] = field(default_factory=list)
    harness_error: str = ""
    seconds: float = 0.0

    @property
    def agree(self) -> bool:
        return self.ours == self.theirs

    @property
    def same_devices(self) -> bool | None:
        if self.ours != "allocated" or self.theirs != "allocated" or not self.their_results:
            return None  # not both allocated, or evicted before the scheduler's results were seen
        return [_comparable(r) for r in self.our_results] == [_comparable(r) for r in self.their_results]

    @property
    def same_message(self) -> bool | None:
        """Does the scheduler's refusal quote ours (``cannot allocate all claims``, a CEL error, …)?"""
        if self.ours == "allocated" or self.ours != self.theirs:
            return None
        return self.our_message in self.their_message


def _comparable(results: list[Obj]) -> list[tuple[str, str, str]]:
    return sorted((r["request"], r["pool"], r["device"]) for r in results)


def verdict(outcome: Outcome) -> tuple[str, str, list[list[Obj]]]:
    match outcome:
        case Allocation(claims=claims):
            return "allocated", "", [c.to_api()["devices"]["results"] for c in claims]
        case Failed(message=message):
            return "error", message, []
        case _:
            return "unschedulable", outcome.message, []


def _scheduled_condition(pod: Obj | None) -> Obj | None:
    for c in ((pod or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == "PodScheduled":
            return dict(c)
    return None


def _allocations(p: Poller, names: Sequence[str]) -> list[list[Obj]] | None:
    allocs = [((p.claims.get(n) or {}).get("status") or {}).get("allocation") for n in names]
    if not all(allocs):
        return None
    return [a["devices"]["results"] for a in allocs if a]


def _refusal(p: Poller, pod: str) -> tuple[str, str] | None:
    c = _scheduled_condition(p.pods.get(pod))
    if c is None or c.get("status") != "False":
        return None
    message = str(c.get("message", ""))
    if c.get("reason") == "SchedulerError":
        return "error", message
    if c.get("reason") == "Unschedulable" and any(m in message for m in DRA_MESSAGES):
        return "unschedulable", message
    return None


def _pod(name: str, node: str, claims: Sequence[str], labels: Mapping[str, str]) -> Obj:
    refs = [{"name": f"c{i}", "resourceClaimName": c} for i, c in enumerate(claims)]
    claims_used = [{"name": r["name"]} for r in refs]
    container = {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"claims": claims_used}}
    return {
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "terminationGracePeriodSeconds": 0,
            "containers": [container],
            "resourceClaims": refs,
        },
    }


class Run:
    """One scenario's objects, created in order and deleted at the end."""

    def __init__(self, ctx: Context, sc: Scenario) -> None:
        self.ctx, self.sc = ctx, sc
        self.tag = f"s{sc.index}-{uuid.uuid4().hex[:4]}"
        self.node = f"diff-{self.tag}"
        self.labels = {"differential.dra-driver.dev/scenario": str(sc.index)}
        self.pods: list[str] = []
        self.claims: list[str] = []
        self.slices: list[str] = []
        self.ns = ctx.namespace

    def claim(self, name: str, devices: Obj) -> Obj:
        body = {"metadata": {"name": name, "labels": self.labels}, "spec": {"devices": devices}}
        self.claims.append(name)
        return self.ctx.kube.create(f"{R}/namespaces/{self.ns}/resourceclaims", body)

    def pod(self, name: str, claims: Sequence[str]) -> None:
        self.pods.append(name)
        self.ctx.kube.create(f"/api/v1/namespaces/{self.ns}/pods", _pod(name, self.node, claims, self.labels))

    def execute(self, record: Record) -> None:
        ctx, kube = self.ctx, self.ctx.kube
        node = kube.get(f"/api/v1/nodes/{self.node}")
        assert node is not None
        owner = {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": node["metadata"]["uid"]}
        for obj in machines.slices(self.sc.machine, ctx.inventories, self.node, owner):
            self.slices.append(obj["metadata"]["name"])
            kube.create(f"{R}/resourceslices", obj)
        pre = []
        for i, devices in enumerate(self.sc.pre):
            name = f"{self.tag}-pre{i}"
            self.claim(name, devices)
            self.pod(name, [name])
            pre.append(name)
        if pre:
            ctx.poller.wait(lambda p: _allocations(p, pre), ctx.timeout, f"{len(pre)} pinned claim(s) allocated")
        new = [self.claim(f"{self.tag}-new{i}", devices) for i, devices in enumerate(self.sc.new)]
        slices = kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={self.node}")
        allocated = [c for c in kube.list(f"{R}/resourceclaims") if (c.get("status") or {}).get("allocation")]
        outcome = allocate_claims(cluster_state(slices, ctx.classes, allocated), new, parse_node(node))
        record.ours, record.our_message, record.our_results = verdict(outcome)
        names = [c["metadata"]["name"] for c in new]
        self.pod(f"{self.tag}-new", names)
        record.theirs, record.their_message, record.their_results = self._their_verdict(names)
        if record.our_results:
            record.our_violations = checker.violations(slices, ctx.classes, allocated, new, record.our_results)
        if record.their_results:
            record.their_violations = checker.violations(slices, ctx.classes, allocated, new, record.their_results)

    def _their_verdict(self, names: list[str]) -> tuple[str, str, list[list[Obj]]]:
        ctx, pod = self.ctx, f"{self.tag}-new"

        def decided(p: Poller) -> tuple[str, str, list[list[Obj]]] | None:
            if (results := _allocations(p, names)) is not None:
                return "allocated", "", results
            if (refused := _refusal(p, pod)) is not None:
                return refused[0], refused[1], []
            if pod not in p.pods and self._evicted(pod):  # gone between two polls, or not listed yet
                return "allocated", EVICTED, []
            return None

        found = ctx.poller.wait(decided, ctx.timeout, f"the scheduler's verdict on pod {pod}")
        if found[0] == "allocated":
            return found
        time.sleep(ctx.settle)  # a refusal from a stale cache is retried once the scheduler catches up
        return ctx.poller.wait(decided, ctx.timeout, f"the scheduler's verdict on pod {pod}")

    def _evicted(self, pod: str) -> bool:
        """Did the device taint eviction controller delete the pod (which it does only once allocated)?"""
        events = self.ctx.kube.list(f"/api/v1/namespaces/{self.ns}/events", fieldSelector=f"involvedObject.name={pod}")
        return any(e.get("reason") == "DeviceTaintManagerEviction" for e in events)

    def cleanup(self) -> None:
        kube = self.ctx.kube
        for name in self.pods:
            kube.delete(f"/api/v1/namespaces/{self.ns}/pods/{name}", gracePeriodSeconds="0")
        for name in self.claims:
            kube.delete(f"{R}/namespaces/{self.ns}/resourceclaims/{name}")
        for name in self.slices:
            kube.delete(f"{R}/resourceslices/{name}")


def run_scenario(ctx: Context, sc: Scenario) -> Record:
    record = Record(sc)
    start = time.monotonic()
    run = Run(ctx, sc)
    node = register_node(ctx.api, run.node)
    try:
        run.execute(record)
    except (TimeoutError, ApiError, AssertionError) as e:
        record.harness_error = f"{type(e).__name__}: {e}"
    finally:
        run.cleanup()
        node.stop()
        ctx.kube.delete(f"/api/v1/nodes/{run.node}")
        ctx.kube.delete(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{run.node}")
    record.seconds = time.monotonic() - start
    return record
