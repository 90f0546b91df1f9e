"""``dra-gpu explain``: why a claim, or a pod's claims, cannot be allocated, node by node, in a live cluster.

``read_inputs`` reads what kube-scheduler reads (ResourceSlices, DeviceClasses, allocated ResourceClaims,
Nodes, the claim or pod). ``analyse`` runs ``dra_driver.structured.explain`` on every candidate node and words
the answer: the request that cannot be served, the selector that matched nothing, the counter set that ran
out and which allocated devices use it, the untolerated taint, the constraint that fails; and what would fit
("gpu: 3 of 4 devices found on node-1", for MIG devices "2g.10gb placements free: none").
``render_table`` / ``render_json`` print a ``Report``. All but ``read_inputs`` and ``run`` is pure.
``run`` adds the mode changes running on nodes and what the mode controller would do now for the claims
(``cli.explain_modes``, on ``controller.planner``). With ``-f`` the objects come from YAML files
(``cli.explain_files``) instead of a cluster.

Candidate nodes: for a pod, nodes that are not cordoned and match its ``nodeName``, ``nodeSelector``,
required node affinity and the node selectors of its claims that are already allocated; for a claim, every
node that sees a resource pool.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, assert_never

from api import gpumodes
from cli import explain_files, explain_modes
from cli.explain_files import Source
from cli.explain_modes import ModesReport
from cli.explain_report import NodeReport, Report, RequestFacts, render_json, render_table
from controller.planner import Policy, load_policy
from controller.planner.world import timestamp
from dra_driver.cel import CelError, compile_selector
from dra_driver.errors import ConfigError, FatalError
from dra_driver.k8s import ApiError, Kube, resource_path
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.probe import probe
from dra_driver.structured import (
    Allocation,
    ClusterState,
    DeviceId,
    Failed,
    Node,
    RequestReport,
    Unsatisfiable,
    cluster_state,
    explain,
    parse_claim,
    parse_node,
)
from dra_driver.structured.evaluate import ERROR, IN_USE, NO_CAPACITY, NO_COUNTERS, NO_MATCH, TAINTED, USABLE
from dra_driver.structured.model import Claim, Device, DeviceRequest
from dra_driver.structured.nodeselect import selector_matches
from dra_driver.structured.pools import Pool, gather_pools
from dra_driver.structured.reasons import (
    CapacityExhausted,
    ClassNotFound,
    ConstraintNotSatisfied,
    CountersExhausted,
    DevicesContended,
    DevicesInUse,
    IncompletePool,
    InvalidPool,
    NoMatchingDevice,
    NotEnoughDevices,
    Reason,
    SelectorError,
    TaintsNotTolerated,
)

R = "/apis/resource.k8s.io/v1"
Obj = Mapping[str, Any]
BLOCKED = {IN_USE: "in use", TAINTED: "taint", NO_CAPACITY: "capacity", NO_COUNTERS: "counters", ERROR: "error"}
MAX_HOLDERS = 6


@dataclass(frozen=True)
class Inputs:
    subject: str  # "claim ns/name" or "pod ns/name"
    claims: tuple[Obj, ...]  # to explain: not allocated yet
    slices: tuple[Obj, ...]
    classes: tuple[Obj, ...]
    allocated: tuple[Obj, ...]  # every allocated claim in the cluster
    nodes: tuple[Obj, ...]
    pod: Obj | None = None
    done: tuple[Obj, ...] = ()  # the pod's claims that are allocated already
    notes: tuple[str, ...] = ()
    every_claim: tuple[Obj, ...] = ()  # for the mode controller's planner: all claims, unbound pods, NodeGpuModes
    unbound_pods: tuple[Obj, ...] = ()
    node_modes: tuple[Obj, ...] = ()


# --- analysis (pure) --------------------------------------------------------------------------------------


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}".lstrip("/")


def _allocation(claim: Obj) -> Obj | None:
    found: Obj | None = (claim.get("status") or {}).get("allocation")
    return found


def holders(allocated: Sequence[Obj]) -> dict[DeviceId, list[str]]:
    out: dict[DeviceId, list[str]] = {}
    for claim in allocated:
        for r in ((_allocation(claim) or {}).get("devices") or {}).get("results") or ():
            out.setdefault(DeviceId(r["driver"], r["pool"], r["device"]), []).append(_key(claim))
    return out


def _pod_admits(pod: Obj, node_obj: Obj, node: Node, done: Sequence[Obj]) -> bool:
    spec = pod.get("spec") or {}
    if (node_obj.get("spec") or {}).get("unschedulable"):
        return False
    if spec.get("nodeName") and spec["nodeName"] != node.name:
        return False
    if any(node.labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    selectors = [required] + [(_allocation(c) or {}).get("nodeSelector") for c in done]
    try:
        return all(selector_matches(node, s) for s in selectors if s)
    except ConfigError:
        return False


def _attribute(device: Device, driver: str, name: str) -> Any:
    raw = device.attributes.get(name) or device.attributes.get(f"{driver}/{name}") or {}
    return next(iter(raw.values()), None)


def _device_request(claims: Sequence[Claim], claim_key: str, name: str) -> DeviceRequest | None:
    base, _, sub = name.partition("/")
    for claim in claims:
        for request in claim.requests if claim.key == claim_key else ():
            if request.name == base:
                return request.exactly if not sub else next((s for s in request.first_available if s.name == sub), None)
    return None


def _matches(expression: str, device: Device) -> bool:
    try:
        return device.matches(compile_selector(expression))
    except CelError:
        return False


def empty_selector(cluster: ClusterState, pools: Sequence[Pool], request: DeviceRequest) -> str:
    """Which selector of the class or the request matches none of the node's devices."""
    devices = [d for p in pools if p.usable for s in p.slices for d in s.devices]
    device_class = cluster.classes.get(request.device_class)
    selectors = [(f"class {request.device_class}", e) for e in (device_class.selectors if device_class else ())]
    selectors += [(f"request {request.name}", e) for e in request.selectors]
    for origin, expression in selectors:
        if expression is not None and not any(_matches(expression, d) for d in devices):
            return f"{origin}: selector {expression} matches none of {len(devices)} devices"
    return f"request {request.name}: each selector matches some of the {len(devices)} devices, none matches all"


def free_placements(report: RequestReport, index: Mapping[DeviceId, Device]) -> dict[str, dict[int, tuple[int, ...]]]:
    out: dict[str, dict[int, list[int]]] = {}
    for status in report.devices:
        device = index.get(status.device)
        profile = device and _attribute(device, status.device.driver, "profile")
        if device is None or not profile or status.state in (NO_MATCH, ERROR):
            continue
        gpus = out.setdefault(str(profile), {})
        if status.state == USABLE:
            gpu = int(_attribute(device, status.device.driver, "index") or 0)
            gpus.setdefault(gpu, []).append(int(_attribute(device, status.device.driver, "placement") or 0))
    return {p: {g: tuple(sorted(s)) for g, s in sorted(gpus.items())} for p, gpus in sorted(out.items())}


def _facts(report: RequestReport, index: Mapping[DeviceId, Device]) -> RequestFacts:
    blocked = {label: report.number(state) for state, label in BLOCKED.items() if report.number(state)}
    placements = free_placements(report, index)
    return RequestFacts(
        report.claim,
        report.request,
        report.device_class,
        report.needed,
        report.matching,
        report.usable,
        blocked,
        placements or None,
    )


def _fits(facts: RequestFacts, node: str) -> list[str]:
    lines = [f"{facts.request}: {min(facts.usable, facts.needed)} of {facts.needed} devices found on {node}"]
    for profile, gpus in (facts.free_placements or {}).items():
        free = "; ".join(f"gpu {g} at {', '.join(map(str, starts))}" for g, starts in gpus.items()) or "none"
        lines.append(f"{profile} placements free: {free}")
    return lines


def _reason_lines(
    reason: Reason,
    cluster: ClusterState,
    claims: Sequence[Claim],
    pools: Sequence[Pool],
    held: Mapping[DeviceId, list[str]],
    claim_of: Mapping[str, str],
) -> list[str]:
    lines = [str(reason)]
    match reason:
        case NoMatchingDevice(request=name, candidates=n):
            request = _device_request(claims, claim_of.get(name, ""), name) if n else None
            if request is not None:
                lines.append(empty_selector(cluster, pools, request))
        case CountersExhausted(pool=pool_name, counter_set=counter_set):
            users = [
                (d, held[DeviceId(p.id.driver, p.id.pool, d.name)], p.id.driver)
                for p in pools
                if str(p.id) == pool_name
                for s in p.slices + p.other_slices
                for d in s.devices
                if DeviceId(p.id.driver, p.id.pool, d.name) in held
                and any(c.counter_set == counter_set for c in d.consumes_counters)
            ]
            if users:
                mig = "MIG device(s) " if all(_attribute(d, driver, "profile") for d, _, driver in users) else ""
                named = [f"{d.name} ({', '.join(claims)})" for d, claims, _ in users[:MAX_HOLDERS]]
                more = f" and {len(users) - MAX_HOLDERS} more" if len(users) > MAX_HOLDERS else ""
                lines.append(f"counter set {counter_set} is used by {mig}{', '.join(named)}{more}")
        case TaintsNotTolerated(request=name, taints=taints):
            lines.append(f"request {name}: add a toleration for {', '.join(taints)} to use the tainted devices")
        case (
            ClassNotFound()
            | IncompletePool()
            | InvalidPool()
            | NotEnoughDevices()
            | DevicesInUse()
            | CapacityExhausted()
            | SelectorError()
            | ConstraintNotSatisfied()
            | DevicesContended()
        ):
            pass  # the reason's own sentence says all there is
        case _:
            assert_never(reason)
    return lines


def node_report(
    cluster: ClusterState, claims: Sequence[Claim], node: Node, held: Mapping[DeviceId, list[str]]
) -> NodeReport | None:
    """How ``claims`` fare on ``node``; None when the node sees no resource pool at all."""
    exp = explain(cluster, list(claims), node)
    if not exp.pools:
        return None
    pools = gather_pools(cluster, node)
    index = {DeviceId(p.id.driver, p.id.pool, d.name): d for p in pools for s in p.slices for d in s.devices}
    facts = tuple(_facts(r, index) for r in exp.requests)
    claim_of = {r.request: r.claim for r in exp.requests}
    match exp.outcome:
        case Allocation(claims=allocated):
            devices = tuple(f"{c.claim} {r.request}={r.device}" for c in allocated for r in c.results)
            return NodeReport(node.name, "allocatable", "", (), (), devices, facts)
        case Unsatisfiable(message=message, reasons=reasons):
            lines = [line for r in reasons for line in _reason_lines(r, cluster, claims, pools, held, claim_of)]
            fits = tuple(line for f in facts for line in _fits(f, node.name))
            return NodeReport(node.name, "unschedulable", message, tuple(lines), fits, (), facts)
        case Failed(message=message):
            return NodeReport(node.name, "error", message, (message,), (), (), facts)


def analyse(inputs: Inputs) -> Report:
    cluster = cluster_state(inputs.slices, inputs.classes, inputs.allocated)
    claims = [parse_claim(c) for c in inputs.claims]
    held = holders(inputs.allocated)
    reports, skipped = [], 0
    for obj in sorted(inputs.nodes, key=lambda n: str((n.get("metadata") or {}).get("name"))):
        node = parse_node(obj)
        if inputs.pod is not None and not _pod_admits(inputs.pod, obj, node, inputs.done):
            skipped += 1
            continue
        report = node_report(cluster, claims, node, held) if claims else None
        if report is None:
            skipped += 1
            continue
        reports.append(report)
    return Report(inputs.subject, tuple(c.key for c in claims), inputs.notes, tuple(reports), skipped)


# --- reading the cluster ----------------------------------------------------------------------------------


def _pod_claims(kube: Source, pod: Obj, ns: str) -> tuple[list[Obj], list[str]]:
    generated = {
        s["name"]: s.get("resourceClaimName") for s in (pod.get("status") or {}).get("resourceClaimStatuses") or ()
    }
    claims: list[Obj] = []
    notes: list[str] = []
    for entry in (pod.get("spec") or {}).get("resourceClaims") or ():
        name = entry.get("resourceClaimName") or generated.get(entry["name"])
        claim = kube.get(f"{R}/namespaces/{ns}/resourceclaims/{name}") if name else None
        if claim is not None:
            claims.append(claim)
            continue
        template_name = entry.get("resourceClaimTemplateName")
        template = kube.get(f"{R}/namespaces/{ns}/resourceclaimtemplates/{template_name}") if template_name else None
        if template is None:
            notes.append(f"claim {entry['name']} of the pod: {name or template_name} does not exist (yet)")
            continue
        spec = (template.get("spec") or {}).get("spec") or {}
        claims.append({"metadata": {"name": f"{entry['name']}-from-{template_name}", "namespace": ns}, "spec": spec})
        notes.append(f"claim {entry['name']} is not created yet: explained from template {template_name}")
    return claims, notes


def _node_modes(kube: Source) -> list[Any]:
    """The NodeGpuModes objects; none when their CustomResourceDefinition is not installed (no controller ran)."""
    try:
        return kube.list(resource_path(gpumodes.API_VERSION, gpumodes.PLURAL))
    except ApiError as exc:
        if exc.not_found:
            return []
        raise


def read_inputs(kube: Source, kind: str, name: str, ns: str) -> Inputs:
    path = f"{R}/namespaces/{ns}/resourceclaims/{name}" if kind == "claim" else f"/api/v1/namespaces/{ns}/pods/{name}"
    obj = kube.get(path)
    if obj is None:
        plural = "resourceclaims" if kind == "claim" else "pods"
        raise FatalError(f"{kind} {ns}/{name} not found; list them with: kubectl get {plural} -n {ns}")
    targets, notes = ([obj], list[str]()) if kind == "claim" else _pod_claims(kube, obj, ns)
    done = [c for c in targets if _allocation(c)]
    for c in done:
        results = ((_allocation(c) or {}).get("devices") or {}).get("results") or ()
        devices = ", ".join(f"{r['request']}={r['device']}" for r in results)
        notes.append(f"claim {_key(c)} is allocated: {devices}")
    todo = [c for c in targets if not _allocation(c)]
    explained = {_key(c) for c in todo}
    every = kube.list(f"{R}/resourceclaims")
    allocated = [c for c in every if _allocation(c) and _key(c) not in explained]
    return Inputs(
        subject=f"{kind} {ns}/{name}",
        claims=tuple(todo),
        slices=tuple(kube.list(f"{R}/resourceslices")),
        classes=tuple(kube.list(f"{R}/deviceclasses")),
        allocated=tuple(allocated),
        nodes=tuple(kube.list("/api/v1/nodes")),
        pod=obj if kind == "pod" else None,
        done=tuple(done),
        notes=(*getattr(kube, "notes", ()), *notes),
        every_claim=tuple(every),
        unbound_pods=tuple(kube.list("/api/v1/pods", fieldSelector="spec.nodeName=")),
        node_modes=tuple(_node_modes(kube)),
    )


def _modes(inputs: Inputs, report: Report, args: argparse.Namespace, caps: Capabilities, now: float) -> ModesReport:
    notes = [] if args.policy else ["plan made with the controller's default policy; pass its ModePolicy with --policy"]
    if caps.api_version != "v1":
        running, bad = explain_modes.running_changes(inputs.node_modes)
        notes.append(f"no plan: the mode controller needs resource.k8s.io/v1, the server serves {caps.api_version}")
        return ModesReport(running, (), (*bad, *notes))
    policy = load_policy(args.policy.read_text()) if args.policy else Policy()
    world = explain_modes.world(
        inputs.nodes, inputs.slices, inputs.classes, inputs.every_claim, inputs.unbound_pods, inputs.node_modes,
        caps, args.driver,
    )  # fmt: skip
    found = explain_modes.analyse(world, policy, now, report.claims)
    return replace(found, notes=(*found.notes, *notes))


def run(args: argparse.Namespace) -> int:
    """Entry point of ``dra-gpu explain`` (``cli.explain_cmd`` declares the arguments)."""
    kube: Source
    if args.filename:
        caps = replace(Capabilities(), partitionable_devices=not args.no_partitionable_devices)
        kube, now = explain_files.load(args.filename, args.driver, caps), time.time()
        if args.now:
            now = timestamp(args.now)
            if not now:
                raise FatalError(f"--now: {args.now!r} is not an RFC 3339 time such as 2026-01-01T00:00:00Z")
    else:
        live = Kube.from_kubeconfig(args.kubeconfig)
        kube, caps, now = live, probe(live), time.time()
    inputs = read_inputs(kube, args.kind, args.name, args.namespace)
    report = analyse(inputs)
    report = replace(report, modes=_modes(inputs, report, args, caps, now))
    sys.stdout.write(render_json(report) if args.output == "json" else render_table(report))
    return 0
