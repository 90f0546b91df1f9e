"""resource.k8s.io/v1 JSON (dicts as the API server returns them) → the allocator's model. Pure.

Defaults the API server would apply are applied here too (``allocationMode: ExactCount``, ``count: 1``,
toleration ``operator: Equal``), so hand-written objects work. Malformed input raises ``ConfigError``.
A device's CEL view is built from its dict when a selector first needs it: do not change the dicts
after parsing them.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from dra_driver.cel import Quantity
from dra_driver.cel import parse_quantity as _parse_quantity
from dra_driver.errors import ConfigError
from dra_driver.structured.model import (
    EXACT_COUNT,
    AllocatedState,
    Capacity,
    Claim,
    ClusterState,
    Constraint,
    CounterConsumption,
    CounterSet,
    Device,
    DeviceClass,
    DeviceId,
    DeviceRequest,
    Node,
    NodeSelection,
    Request,
    RequestPolicy,
    Slice,
    Taint,
    Toleration,
)

Obj = Mapping[str, Any]

# The same few strings ("1", "5Gi", ...) recur on every node's devices; a Quantity is immutable.
parse_quantity = lru_cache(maxsize=4096)(_parse_quantity)


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec", obj)
    return spec if isinstance(spec, Mapping) else {}


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _quantities(raw: Mapping[str, Any] | None) -> dict[str, Quantity]:
    return {k: parse_quantity(str(v)) for k, v in (raw or {}).items()}


def _counters(raw: Mapping[str, Any] | None) -> dict[str, Quantity]:
    return {k: parse_quantity(str(v["value"])) for k, v in (raw or {}).items()}


def _selectors(raw: Iterable[Obj] | None) -> tuple[str | None, ...]:
    return tuple((s.get("cel") or {}).get("expression") for s in raw or ())


def _node_selection(raw: Obj) -> NodeSelection:
    return NodeSelection(
        node_name=raw.get("nodeName") or None,
        node_selector=raw.get("nodeSelector"),
        all_nodes=bool(raw.get("allNodes", False)),
        per_device=bool(raw.get("perDeviceNodeSelection", False)),
    )


def _policy(raw: Obj | None) -> RequestPolicy | None:
    if raw is None:
        return None
    valid_range = raw.get("validRange")
    rng = valid_range or {}
    return RequestPolicy(
        default=parse_quantity(str(raw["default"])) if raw.get("default") is not None else None,
        valid_values=tuple(parse_quantity(str(v)) for v in raw.get("validValues") or ()),
        range_min=parse_quantity(str(rng["min"])) if rng.get("min") is not None else None,
        range_max=parse_quantity(str(rng["max"])) if rng.get("max") is not None else None,
        range_step=parse_quantity(str(rng["step"])) if rng.get("step") is not None else None,
        has_range=valid_range is not None,
    )


# Devices of one model repeat the same capacities and counter consumptions on every node. Sharing these
# frozen values keeps a large cluster's state small (and the garbage collector's passes over it short).
@lru_cache(maxsize=4096)
def _plain_capacity(value: str) -> Capacity:
    return Capacity(parse_quantity(value))


def _capacity(raw: Obj) -> Capacity:
    policy = raw.get("requestPolicy")
    if policy is None:
        return _plain_capacity(str(raw["value"]))
    return Capacity(parse_quantity(str(raw["value"])), _policy(policy))


_consumptions: dict[tuple[Any, ...], CounterConsumption] = {}


def _consumption(raw: Obj) -> CounterConsumption:
    """One shared (never changed) consumption per distinct counter set, counters, amounts and groups."""
    counters = raw.get("counters") or {}
    groups = raw.get("compatibilityGroups")
    key = (
        raw["counterSet"],
        tuple(counters),
        tuple([str(v["value"]) for v in counters.values()]),
        tuple(groups) if groups else (),
    )
    found = _consumptions.get(key)
    if found is None:
        amounts = {k: parse_quantity(v) for k, v in zip(key[1], key[2], strict=True)}
        if len(_consumptions) >= 4096:
            _consumptions.clear()
        found = _consumptions[key] = CounterConsumption(str(key[0]), amounts, key[3])
    return found


_capacities: dict[tuple[tuple[str, ...], tuple[str | None, ...]], Mapping[str, Capacity]] = {}


def _plain_capacities(raw: Mapping[str, Any]) -> Mapping[str, Capacity] | None:
    """Capacities without request policies (each ``{"value": ...}`` alone), one shared (never changed) mapping
    per distinct set of values; None when some capacity has more than its value."""
    values = tuple([str(v["value"]) if len(v) == 1 else None for v in raw.values()])
    if None in values:
        return None
    key = (tuple(raw), values)
    found = _capacities.get(key)
    if found is None:
        if len(_capacities) >= 4096:
            _capacities.clear()
        found = _capacities[key] = {k: _plain_capacity(v) for k, v in zip(key[0], values, strict=True)}
    return found


def _attributes(raw: Obj) -> Mapping[str, Obj]:
    """The device's attributes, checked to be what its CEL view, built later, can read."""
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise TypeError(f"device {raw.get('name')}: attributes must map names to DeviceAttribute objects")
    for attribute in attributes.values():
        if type(attribute) is not dict and not isinstance(attribute, Mapping):  # dict first: it is cheaper
            raise TypeError(f"device {raw.get('name')}: attributes must map names to DeviceAttribute objects")
    return attributes


_new = object.__new__


def _device(driver: str, raw: Obj) -> Device:
    # the common shapes cheaply: parsing is per device, 200 per MIG node (docs/benchmarks.md)
    per_device = "nodeName" in raw or "nodeSelector" in raw or "allNodes" in raw
    consumes, taints, capacity = raw.get("consumesCounters"), raw.get("taints"), raw.get("capacity")
    capacities = _plain_capacities(capacity) if capacity else {}
    if capacities is None:  # some capacity has a request policy
        capacities = {k: _capacity(v) for k, v in (capacity or {}).items()}
    conditions = raw.get("bindingConditions")
    device = _new(Device)
    # Device's own __init__ sets its fields one by one through object.__setattr__ (it is frozen): a tenth of
    # the parse. Every field is set here, in the same form __init__ would give it.
    device.__dict__.update(
        name=str(raw["name"]),
        driver=driver,
        attributes=_attributes(raw),
        capacity=capacities,
        consumes_counters=tuple([_consumption(c) for c in consumes]) if consumes else (),
        taints=tuple(Taint(str(t["key"]), str(t.get("value") or ""), str(t.get("effect") or "")) for t in taints)
        if taints
        else (),
        node=_node_selection(raw) if per_device else None,
        allow_multiple_allocations=bool(raw.get("allowMultipleAllocations", False)),
        binds_to_node=bool(raw.get("bindsToNode", False)),
        binding_conditions=tuple(conditions) if conditions else (),
        source=raw,
    )
    return device


def parse_slice(obj: Obj) -> Slice:
    spec, name = _spec(obj), _name(obj)
    try:
        driver, pool = str(spec["driver"]), spec["pool"]
        return Slice(
            name=name,
            driver=driver,
            pool=str(pool["name"]),
            generation=int(pool.get("generation", 0)),
            resource_slice_count=int(pool.get("resourceSliceCount", 1)),
            node=_node_selection(spec),
            devices=tuple(_device(driver, d) for d in spec.get("devices") or ()),
            shared_counters=tuple(
                CounterSet(str(c["name"]), _counters(c.get("counters"))) for c in spec.get("sharedCounters") or ()
            ),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"ResourceSlice {name}", f"cannot read it: {e!r}") from e


def parse_class(obj: Obj, name: str = "") -> DeviceClass:
    return DeviceClass(name or _name(obj), _selectors(_spec(obj).get("selectors")))


def _tolerations(raw: Iterable[Obj] | None) -> tuple[Toleration, ...]:
    return tuple(
        Toleration(
            key=str(t.get("key") or ""),
            operator=str(t.get("operator") or "Equal"),
            value=str(t.get("value") or ""),
            effect=str(t.get("effect") or ""),
        )
        for t in raw or ()
    )


def _device_request(name: str, raw: Obj, subrequest: bool) -> DeviceRequest:
    capacity = raw.get("capacity")
    return DeviceRequest(
        name=name,
        device_class=str(raw.get("deviceClassName") or ""),
        selectors=_selectors(raw.get("selectors")),
        mode=str(raw.get("allocationMode") or EXACT_COUNT),
        count=int(raw.get("count", 1)) if raw.get("count") is not None else 1,
        admin_access=False if subrequest else bool(raw.get("adminAccess", False)),
        tolerations=_tolerations(raw.get("tolerations")),
        capacity=_quantities(capacity.get("requests")) if capacity is not None else None,
        derived_attributes=bool(raw.get("derivedAttributes")),
    )


def _request(raw: Obj) -> Request:
    name = str(raw["name"])
    exactly = raw.get("exactly")
    return Request(
        name=name,
        exactly=_device_request(name, exactly, False) if exactly is not None else None,
        first_available=tuple(_device_request(str(s["name"]), s, True) for s in raw.get("firstAvailable") or ()),
    )


def parse_claim(obj: Obj) -> Claim:
    meta, name = obj.get("metadata") or {}, _name(obj)
    devices = _spec(obj).get("devices") or {}
    try:
        return Claim(
            name=name,
            namespace=str(meta.get("namespace") or ""),
            uid=str(meta.get("uid") or ""),
            requests=tuple(_request(r) for r in devices.get("requests") or ()),
            constraints=tuple(
                Constraint(tuple(c.get("requests") or ()), c.get("matchAttribute"), c.get("distinctAttribute"))
                for c in devices.get("constraints") or ()
            ),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"ResourceClaim {name}", f"cannot read it: {e!r}") from e


def allocated_state(claims: Iterable[Obj]) -> AllocatedState:
    """The devices already-allocated claims hold (the scheduler's ``foreachAllocatedDevice``)."""
    devices: set[DeviceId] = set()
    shared: set[tuple[DeviceId, str]] = set()
    capacity: dict[DeviceId, dict[str, Quantity]] = {}
    for claim in claims:
        allocation = (claim.get("status") or {}).get("allocation") or {}
        for result in (allocation.get("devices") or {}).get("results") or ():
            if result.get("adminAccess"):
                continue
            device = DeviceId(str(result["driver"]), str(result["pool"]), str(result["device"]))
            if result.get("shareID") is not None:
                shared.add((device, str(result["shareID"])))
                for key, value in _quantities(result.get("consumedCapacity")).items():
                    held = capacity.setdefault(device, {})
                    held[key] = held.get(key, Quantity(0)) + value
                continue
            devices.add(device)
    return AllocatedState(frozenset(devices), frozenset(shared), capacity)


def parse_node(obj: Obj) -> Node:
    meta = obj.get("metadata") or {}
    return Node(str(meta.get("name", "")), dict(meta.get("labels") or {}))


def cluster_state(
    slices: Iterable[Obj],
    classes: Mapping[str, Obj] | Iterable[Obj],
    allocated_claims: Iterable[Obj] = (),
    parse: Callable[[Obj], Slice] = parse_slice,
) -> ClusterState:
    """ClusterState from ResourceSlices, DeviceClasses (by name, or a list) and already-allocated claims.

    ``parse`` reads one slice: a long-lived caller passes a ``slicememo.ParsedSlices`` to reuse its parses."""
    if isinstance(classes, Mapping):
        parsed = {name: parse_class(obj, name) for name, obj in classes.items()}
    else:
        parsed = {c.name: c for c in (parse_class(obj) for obj in classes)}
    with collector_paused():
        parsed_slices = tuple(parse(s) for s in slices)
    return ClusterState(parsed_slices, parsed, allocated_state(allocated_claims))


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while slices are parsed (then back as it was).

    Parsing a large cluster creates millions of objects, none of them in a reference cycle, and every
    collection the allocations trigger walks the objects made so far: with the collector on, half of the
    parse time of 500 MIG nodes was the collector's (docs/benchmarks.md). Garbage without cycles is still
    freed at once (reference counting). The collector is process-wide: other threads do not collect
    cycles during the parse either.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
