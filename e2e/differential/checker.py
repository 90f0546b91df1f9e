"""Rules every allocation must satisfy, checked without any code of ``dra_driver.structured``. Pure.

Input is API JSON as the server returns it: the node's ResourceSlices, the DeviceClasses, the claims that
were already allocated, the claims being allocated and, per claim, the ``results`` to check (ours or the
scheduler's). ``violations`` returns one sentence per broken rule (empty: the allocation is valid):

- every result names a device of the node's slices, at most 32 results per claim;
- per request: ``ExactCount`` gives ``count`` results, ``All`` every matching device (at least one), a
  ``firstAvailable`` request exactly one of its subrequests;
- the class's and the request's CEL selectors are true for the device (our CEL environment);
- NoSchedule / NoExecute device taints are tolerated by the request;
- a device is held once (already-allocated claims included) unless it allows multiple allocations;
- shared counters: what all held devices consume stays within every counter set;
- consumable capacity: each share consumes at least what it asked for, on the policy's grid, and all shares
  of a device together stay within its capacity;
- ``matchAttribute`` / ``distinctAttribute`` constraints hold over the devices of the requests they name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dra_driver.cel import CelError, compile_selector, device_view, parse_quantity

Obj = Mapping[str, Any]
Key = tuple[str, str, str]  # driver, pool, device
MAX_RESULTS = 32
BLOCKING = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class NodeDevices:
    """The devices and counter sets of a node's slices, by (driver, pool, name)."""

    devices: Mapping[Key, Obj]
    counter_sets: Mapping[tuple[str, str, str], Mapping[str, int]]  # (driver, pool, set) -> counter -> nanos
    order: tuple[Key, ...] = field(default=())


def node_devices(slices: Iterable[Obj]) -> NodeDevices:
    devices: dict[Key, Obj] = {}
    counter_sets: dict[tuple[str, str, str], dict[str, int]] = {}
    for s in sorted(slices, key=lambda s: s["metadata"]["name"]):
        spec = s["spec"]
        driver, pool = spec["driver"], spec["pool"]["name"]
        for d in spec.get("devices") or ():
            devices[(driver, pool, d["name"])] = d
        for cs in spec.get("sharedCounters") or ():
            counter_sets[(driver, pool, cs["name"])] = {
                k: parse_quantity(str(v["value"])).nanos for k, v in (cs.get("counters") or {}).items()
            }
    return NodeDevices(devices, counter_sets, tuple(devices))


def result_key(result: Obj) -> Key:
    return (str(result["driver"]), str(result["pool"]), str(result["device"]))


def selector_true(expression: str, driver: str, device: Obj) -> bool:
    try:
        return bool(compile_selector(expression).matches(device_view(driver, dict(device))))
    except CelError:
        return False


def class_selectors(device_class: Obj | None) -> list[str]:
    spec = (device_class or {}).get("spec") or {}
    return [s["cel"]["expression"] for s in spec.get("selectors") or ()]


def matches(key: Key, device: Obj, device_class: Obj | None, request: Obj) -> bool:
    if device_class is None:
        return False
    expressions = class_selectors(device_class) + [s["cel"]["expression"] for s in request.get("selectors") or ()]
    return all(selector_true(e, key[0], device) for e in expressions)


def tolerated(taint: Obj, tolerations: Sequence[Obj]) -> bool:
    if taint.get("effect") not in BLOCKING:
        return True
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("key") and t["key"] != taint.get("key"):
            continue
        if t.get("operator") == "Exists" or (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


# --- consumable capacity ------------------------------------------------------------------------------


def _q(value: object) -> int:
    return parse_quantity(str(value)).nanos


def consumed(requested: Mapping[str, Any], capacity: Mapping[str, Obj]) -> dict[str, int] | None:
    """What one share consumes per capacity (nanos), None if a request is off the policy's range."""
    out = {}
    for name, cap in capacity.items():
        policy = cap.get("requestPolicy")
        if name not in requested:
            out[name] = _q(policy["default"]) if policy and policy.get("default") is not None else _q(cap["value"])
            continue
        amount = _q(requested[name])
        rng = (policy or {}).get("validRange")
        if rng:
            low = _q(rng["min"])
            amount = max(amount, low)
            if rng.get("step") is not None:
                step = _q(rng["step"])
                amount = low + -(-(amount - low) // step) * step
            if rng.get("max") is not None and amount > _q(rng["max"]):
                return None
        out[name] = amount
    return out


def on_grid(amount: int, cap: Obj) -> bool:
    rng = (cap.get("requestPolicy") or {}).get("validRange")
    if not rng:
        return True
    low = _q(rng["min"])
    if amount < low or (rng.get("max") is not None and amount > _q(rng["max"])):
        return False
    return rng.get("step") is None or (amount - low) % _q(rng["step"]) == 0


# --- holdings: what a set of results takes from the node ------------------------------------------------


@dataclass
class Holdings:
    exclusive: Counter[Key] = field(default_factory=Counter)
    shares: dict[Key, list[dict[str, int]]] = field(default_factory=dict)

    def add(self, result: Obj) -> None:
        if result.get("adminAccess"):
            return
        key = result_key(result)
        if result.get("shareID") is not None:
            amounts = {k: _q(v) for k, v in (result.get("consumedCapacity") or {}).items()}
            self.shares.setdefault(key, []).append(amounts)
        else:
            self.exclusive[key] += 1

    def devices(self) -> set[Key]:
        return set(self.exclusive) | set(self.shares)


def holdings(claims: Iterable[Obj]) -> Holdings:
    held = Holdings()
    for claim in claims:
        for result in ((claim.get("status") or {}).get("allocation") or {}).get("devices", {}).get("results") or ():
            held.add(result)
    return held


def resource_violations(node: NodeDevices, held: Holdings) -> list[str]:
    """Exclusivity, shared counters and consumable capacity of everything held."""
    out = []
    for key, n in held.exclusive.items():
        device = node.devices.get(key)
        multi = bool(device and device.get("allowMultipleAllocations"))
        if n > 1 and not multi:
            out.append(f"device {'/'.join(key)} is allocated {n} times")
        if key in held.shares and not multi:
            out.append(f"device {'/'.join(key)} is both shared and held exclusively")
    used: dict[tuple[str, str, str], dict[str, int]] = {}
    for key in held.devices():
        for c in (node.devices.get(key) or {}).get("consumesCounters") or ():
            counters = used.setdefault((key[0], key[1], c["counterSet"]), {})
            for name, v in (c.get("counters") or {}).items():
                counters[name] = counters.get(name, 0) + _q(v["value"])
    for set_key, counters in sorted(used.items()):
        have = node.counter_sets.get(set_key)
        if have is None:
            out.append(f"counter set {'/'.join(set_key)} does not exist")
            continue
        for name, amount in sorted(counters.items()):
            if amount > have.get(name, 0):
                out.append(f"counter {set_key[2]}/{name}: {amount} consumed, {have.get(name, 0)} available")
    for key, shares in sorted(held.shares.items()):
        capacity = (node.devices.get(key) or {}).get("capacity") or {}
        for name, cap in capacity.items():
            total = sum(s.get(name, 0) for s in shares)
            if total > _q(cap["value"]):
                out.append(f"capacity {name} of {'/'.join(key)}: {total} consumed by {len(shares)} shares")
    return out


# --- per claim ------------------------------------------------------------------------------------------


def _request_violations(
    node: NodeDevices, classes: Mapping[str, Obj], request: Obj, name: str, results: list[Obj]
) -> list[str]:
    device_class = classes.get(str(request.get("deviceClassName")))
    out = []
    for r in results:
        key = result_key(r)
        device = node.devices.get(key)
        if device is None:
            out.append(f"request {name}: device {'/'.join(key)} is not on the node")
            continue
        if not matches(key, device, device_class, request):
            out.append(f"request {name}: device {key[2]} does not match the class and request selectors")
        for taint in device.get("taints") or ():
            if not tolerated(taint, request.get("tolerations") or ()):
                out.append(f"request {name}: device {key[2]} has untolerated taint {taint.get('key')}")
        out += _capacity_violations(device, request, r, name)
    if request.get("allocationMode") == "All":
        every = {k for k, d in node.devices.items() if matches(k, d, device_class, request)}
        got = {result_key(r) for r in results}
        if not every or got != every:
            out.append(f"request {name}: mode All got {len(got)} devices, {len(every)} match")
    elif len(results) != int(request.get("count", 1)):
        out.append(f"request {name}: {len(results)} results, {request.get('count', 1)} requested")
    return out


def _capacity_violations(device: Obj, request: Obj, result: Obj, name: str) -> list[str]:
    if not device.get("allowMultipleAllocations"):
        return []
    if result.get("shareID") is None:
        return [f"request {name}: multi-allocatable device {device['name']} allocated without a share ID"]
    wanted = consumed((request.get("capacity") or {}).get("requests") or {}, device.get("capacity") or {})
    got = {k: _q(v) for k, v in (result.get("consumedCapacity") or {}).items()}
    if wanted is None:
        return [f"request {name}: capacity request outside the policy was allocated"]
    out = []
    for cap_name, amount in wanted.items():
        have = got.get(cap_name, 0)
        if have < amount or not on_grid(have, device["capacity"][cap_name]):
            out.append(f"request {name}: consumed {cap_name} {have}, expected at least {amount} on the policy grid")
    return out


def _attribute(device: Obj, driver: str, qualified: str) -> Any:
    attrs = device.get("attributes") or {}
    domain, _, bare = qualified.partition("/")
    raw = attrs.get(qualified) or (attrs.get(bare) if domain == driver else None)
    if not raw:
        return None
    return next(((k, v) for k, v in raw.items() if k in ("string", "int", "bool", "version")), None)


def _constraint_violations(node: NodeDevices, constraint: Obj, results: Sequence[Obj]) -> list[str]:
    names = set(constraint.get("requests") or ())
    covered = [r for r in results if not names or r["request"] in names or r["request"].split("/")[0] in names]
    values = [
        _attribute(node.devices.get(result_key(r)) or {}, r["driver"], _constraint_attr(constraint)) for r in covered
    ]
    what = f"constraint {dict(constraint)}"
    if any(v is None for v in values):
        return [f"{what}: a device lacks the attribute"]
    if constraint.get("matchAttribute") and len(set(values)) > 1:
        return [f"{what}: values differ {sorted(set(map(str, values)))}"]
    if constraint.get("distinctAttribute") and len(set(values)) != len(values):
        return [f"{what}: values repeat {sorted(map(str, values))}"]
    return []


def _constraint_attr(constraint: Obj) -> str:
    return str(constraint.get("matchAttribute") or constraint.get("distinctAttribute"))


def claim_violations(node: NodeDevices, classes: Mapping[str, Obj], claim: Obj, results: Sequence[Obj]) -> list[str]:
    devices = ((claim.get("spec") or {}).get("devices")) or {}
    out = []
    if len(results) > MAX_RESULTS:
        out.append(f"{len(results)} results, at most {MAX_RESULTS} allowed")
    known = set()
    for request in devices.get("requests") or ():
        name = request["name"]
        if request.get("exactly") is not None:
            mine = [r for r in results if r["request"] == name]
            known.add(name)
            out += _request_violations(node, classes, request["exactly"], name, mine)
            continue
        chosen = {r["request"] for r in results if r["request"].split("/")[0] == name}
        known |= chosen
        if len(chosen) != 1:
            out.append(f"request {name}: results for {len(chosen)} subrequests, exactly one expected")
            continue
        (full,) = chosen
        sub = next((s for s in request.get("firstAvailable") or () if f"{name}/{s['name']}" == full), None)
        if sub is None:
            out.append(f"request {name}: unknown subrequest {full}")
            continue
        out += _request_violations(node, classes, sub, full, [r for r in results if r["request"] == full])
    out += [f"result for unknown request {r['request']}" for r in results if r["request"] not in known]
    for constraint in devices.get("constraints") or ():
        out += _constraint_violations(node, constraint, results)
    return out


def violations(
    slices: Iterable[Obj],
    classes: Mapping[str, Obj],
    allocated_claims: Iterable[Obj],
    claims: Sequence[Obj],
    results: Sequence[Sequence[Obj]],
) -> list[str]:
    """Every broken rule of ``results`` (one list per claim) on top of what ``allocated_claims`` hold."""
    node = node_devices(slices)
    out = []
    held = holdings(allocated_claims)
    for claim, mine in zip(claims, results, strict=True):
        out += [f"claim {claim['metadata']['name']}: {v}" for v in claim_violations(node, classes, claim, mine)]
        for r in mine:
            held.add(r)
    return out + resource_violations(node, held)
