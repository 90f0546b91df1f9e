"""Why a claim, or a pod's claims, cannot be allocated, node by node: the work of ``dra-gpu explain``, run
by the CLI (``cli.explain``) and by the mode controller for ``/explain`` (``controller.explainer``).

``read_inputs`` reads what kube-scheduler reads (ResourceSlices, DeviceClasses, allocated ResourceClaims,
Nodes, the claim or pod) from a ``Source``. ``analyse`` runs ``dra_driver.structured.explain`` on every
candidate node and words the answer: the request that cannot be served, the selector that matched nothing,
the counter set that ran out and which allocated devices use it, the untolerated taint, the constraint that
fails; and what would fit ("gpu: 3 of 4 devices found on node-1", for MIG devices "2g.10gb placements free:
none"). ``controller.explain.words`` words each reason. ``modes`` adds the mode changes running on nodes and
what the mode controller would do now for the claims (``controller.explain.modes``, on
``controller.planner``). ``answer`` is all of it as text. All but ``read_inputs`` is pure.

Candidate nodes: for a pod, nodes that are not cordoned and match its ``nodeName``, ``nodeSelector``,
required node affinity and the node selectors of its claims that are already allocated; for a claim, every
node that sees a resource pool.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

from api import gpumodes
from controller.explain import modes as explain_modes
from controller.explain.modes import ModesReport
from controller.explain.report import NodeReport, Report, render_json, render_table
from controller.explain.words import fits_lines, reason_lines, request_facts
from controller.planner import Policy
from controller.planner.view import ViewMemo
from dra_driver.errors import ConfigError, FatalError
from dra_driver.k8s import ApiError, resource_path
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.structured import (
    Allocation,
    ClusterState,
    DeviceId,
    Failed,
    Node,
    Unsatisfiable,
    allocate_claims,
    cluster_state,
    explain,
    parse_claim,
    parse_node,
    parse_slice,
)
from dra_driver.structured.evaluate import ReportMemo
from dra_driver.structured.model import Claim, Slice
from dra_driver.structured.nodeselect import selector_matches
from dra_driver.structured.pools import gather_pools

R = "/apis/resource.k8s.io/v1"
Obj = Mapping[str, Any]


class NotFound(FatalError):
    """The claim or pod to explain does not exist."""


class Source(Protocol):
    """The reads ``read_inputs`` makes: the API server (``dra_driver.k8s.Kube``), YAML files
    (``cli.explain_files.FileKube``) or the mode controller's watch cache (``controller.explainer``)."""

    def get(self, path: str) -> Obj | None: ...

    def list(self, path: str, **query: str) -> list[Any]: ...


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


def node_report(
    cluster: ClusterState,
    claims: Sequence[Claim],
    node: Node,
    held: Mapping[DeviceId, list[str]],
    *,
    detail: bool = True,
) -> NodeReport | None:
    """How ``claims`` fare on ``node``; None when the node sees no resource pool at all.

    Without ``detail`` a node that takes the claims gets no per-request facts (``requests=()``): the table
    does not print them, and judging every device of the node for them is most of the work.
    """
    reports: ReportMemo = {}
    outcome = allocate_claims(cluster, claims, node, reports=reports)
    if not detail and isinstance(outcome, Allocation):
        try:
            seen = bool(gather_pools(cluster, node))
        except ConfigError:
            seen = False
        devices = tuple(f"{c.claim} {r.request}={r.device}" for c in outcome.claims for r in c.results)
        return NodeReport(node.name, "allocatable", "", (), (), devices, ()) if seen else None
    exp = explain(cluster, list(claims), node, outcome=outcome, reports=reports)
    if not exp.pools:
        return None
    pools = gather_pools(cluster, node)
    index = {DeviceId(p.id.driver, p.id.pool, d.name): d for p in pools for s in p.slices for d in s.devices}
    facts = tuple(request_facts(r, index) for r in exp.requests)
    claim_of = {r.request: r.claim for r in exp.requests}
    match exp.outcome:
        case Allocation(claims=allocated):
            devices = tuple(f"{c.claim} {r.request}={r.device}" for c in allocated for r in c.results)
            return NodeReport(node.name, "allocatable", "", (), (), devices, facts)
        case Unsatisfiable(message=message, reasons=reasons):
            lines = [line for r in reasons for line in reason_lines(r, cluster, claims, pools, held, claim_of)]
            fits = tuple(line for f in facts for line in fits_lines(f, node.name))
            return NodeReport(node.name, "unschedulable", message, tuple(lines), fits, (), facts)
        case Failed(message=message):
            return NodeReport(node.name, "error", message, (message,), (), (), facts)


def analyse(inputs: Inputs, *, detail: bool = True, parse: Callable[[Obj], Slice] = parse_slice) -> Report:
    """The report; without ``detail``, nodes that take the claims carry no per-request facts (``node_report``).
    ``parse`` reads a slice (the controller passes its ``ParsedSlices``)."""
    cluster = cluster_state(inputs.slices, inputs.classes, inputs.allocated, parse)
    claims = [parse_claim(c) for c in inputs.claims]
    held = holders(inputs.allocated)
    reports, skipped = [], 0
    for obj in sorted(inputs.nodes, key=lambda n: str((n.get("metadata") or {}).get("name"))):
        node = parse_node(obj)
        if inputs.pod is not None and not _pod_admits(inputs.pod, obj, node, inputs.done):
            skipped += 1
            continue
        report = node_report(cluster, claims, node, held, detail=detail) if claims else None
        if report is None:
            skipped += 1
            continue
        reports.append(report)
    return Report(inputs.subject, tuple(c.key for c in claims), inputs.notes, tuple(reports), skipped)


@contextmanager
def collector_off() -> Iterator[None]:
    """Python's cyclic garbage collector off for a one-shot analysis, then what it made frozen (``gc.freeze``).

    The objects read from the API server and the parsed cluster are millions of objects without reference
    cycles (``dra_driver.structured.parse``); every full collection walks them all (1.75 s CPU for the parsed
    1000 MIG nodes), the decoding and the analysis would trigger several, and the interpreter one more at
    exit. Decoding the 239 MB of JSON of 1000 MIG nodes' slices took 13.5 s CPU with the collector on, 4.4 s
    with it off. Frozen objects are still freed by
    reference counting; the few cycles made meanwhile stay until the process ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


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
        raise NotFound(f"{kind} {ns}/{name} not found; list them with: kubectl get {plural} -n {ns}")
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


def modes(
    inputs: Inputs,
    report: Report,
    policy: Policy | None,
    caps: Capabilities,
    driver: str,
    now: float,
    parse: Callable[[Obj], Slice] = parse_slice,
    views: ViewMemo | None = None,
) -> ModesReport:
    """The mode changes running, and what the mode controller would do now (``policy``: None for its defaults)."""
    notes = [] if policy else ["plan made with the controller's default policy; pass its ModePolicy with --policy"]
    if caps.api_version != "v1":
        running, bad = explain_modes.running_changes(inputs.node_modes)
        notes.append(f"no plan: the mode controller needs resource.k8s.io/v1, the server serves {caps.api_version}")
        return ModesReport(running, (), (*bad, *notes))
    world = explain_modes.world(
        inputs.nodes, inputs.slices, inputs.classes, inputs.every_claim, inputs.unbound_pods, inputs.node_modes,
        caps, driver, parse, views,
    )  # fmt: skip
    found = explain_modes.analyse(world, policy or Policy(), now, report.claims)
    return replace(found, notes=(*found.notes, *notes))


def answer(
    inputs: Inputs,
    policy: Policy | None,
    caps: Capabilities,
    driver: str,
    now: float,
    output: str,
    parse: Callable[[Obj], Slice] = parse_slice,
    views: ViewMemo | None = None,
) -> str:
    """The whole explanation as ``dra-gpu explain -o OUTPUT`` prints it (``table`` or ``json``); a long-lived
    caller passes what it remembers: parsed slices (``parse``) and node views (``views``)."""
    report = analyse(inputs, detail=output == "json", parse=parse)
    report = replace(report, modes=modes(inputs, report, policy, caps, driver, now, parse, views))
    return render_json(report) if output == "json" else render_table(report)
