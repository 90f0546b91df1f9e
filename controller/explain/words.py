"""The words of ``dra-gpu explain`` for one node (``controller.explain.analysis.node_report``): the facts per request, what
would fit, and each reason with what lies behind it (the selector that matched nothing, who holds the
counters that ran out, the toleration to add). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, assert_never

from controller.explain.report import RequestFacts
from dra_driver.cel import CelError, compile_selector
from dra_driver.structured import ClusterState, DeviceId, RequestReport
from dra_driver.structured.evaluate import ERROR, IN_USE, NO_CAPACITY, NO_COUNTERS, NO_MATCH, TAINTED, USABLE
from dra_driver.structured.model import Claim, Device, DeviceRequest
from dra_driver.structured.pools import Pool
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

BLOCKED = {IN_USE: "in use", TAINTED: "taint", NO_CAPACITY: "capacity", NO_COUNTERS: "counters", ERROR: "error"}
MAX_HOLDERS = 6


def attribute(device: Device, driver: str, name: str) -> Any:
    raw = device.attributes.get(name) or device.attributes.get(f"{driver}/{name}") or {}
    return next(iter(raw.values()), None)


def device_request(claims: Sequence[Claim], claim_key: str, name: str) -> DeviceRequest | None:
    base, _, sub = name.partition("/")
    for claim in claims:
        for request in claim.requests if claim.key == claim_key else ():
            if request.name == base:
                return request.exactly if not sub else next((s for s in request.first_available if s.name == sub), None)
    return None


def matches(expression: str, device: Device) -> bool:
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
        if expression is not None and not any(matches(expression, d) for d in devices):
            return f"{origin}: selector {expression} matches none of {len(devices)} devices"
    return f"request {request.name}: each selector matches some of the {len(devices)} devices, none matches all"


def free_placements(report: RequestReport, index: Mapping[DeviceId, Device]) -> dict[str, dict[int, tuple[int, ...]]]:
    out: dict[str, dict[int, list[int]]] = {}
    for status in report.devices:
        device = index.get(status.device)
        profile = device and attribute(device, status.device.driver, "profile")
        if device is None or not profile or status.state in (NO_MATCH, ERROR):
            continue
        gpus = out.setdefault(str(profile), {})
        if status.state == USABLE:
            gpu = int(attribute(device, status.device.driver, "index") or 0)
            gpus.setdefault(gpu, []).append(int(attribute(device, status.device.driver, "placement") or 0))
    return {p: {g: tuple(sorted(s)) for g, s in sorted(gpus.items())} for p, gpus in sorted(out.items())}


def request_facts(report: RequestReport, index: Mapping[DeviceId, Device]) -> RequestFacts:
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


def fits_lines(facts: RequestFacts, node: str) -> list[str]:
    lines = [f"{facts.request}: {min(facts.usable, facts.needed)} of {facts.needed} devices found on {node}"]
    for profile, gpus in (facts.free_placements or {}).items():
        free = "; ".join(f"gpu {g} at {', '.join(map(str, starts))}" for g, starts in gpus.items()) or "none"
        lines.append(f"{profile} placements free: {free}")
    return lines


def reason_lines(
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
            request = device_request(claims, claim_of.get(name, ""), name) if n else None
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
                mig = "MIG device(s) " if all(attribute(d, driver, "profile") for d, _, driver in users) else ""
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
