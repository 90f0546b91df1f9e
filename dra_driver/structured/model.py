"""What the allocator works on: ResourceSlices, DeviceClasses, claims and a node, as frozen values.

Built from resource.k8s.io/v1 JSON by ``parse``; nothing here talks to an API server.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from dra_driver.cel import CelEvalError, DeviceView, Quantity, Selector, device_view
from dra_driver.cel.memo import attributes_invalid
from dra_driver.structured.slice_index import SliceIndex

MAX_RESULTS_PER_CLAIM = 32  # resourceapi.AllocationResultsMaxSize
_DEVICE_RESULTS_LIMIT = 64  # selector results remembered per device (distinct expressions)
EXACT_COUNT = "ExactCount"
ALL = "All"


@dataclass(frozen=True, order=True)
class DeviceId:
    driver: str
    pool: str
    device: str

    def __str__(self) -> str:
        return f"{self.driver}/{self.pool}/{self.device}"


@dataclass(frozen=True, order=True)
class PoolId:
    driver: str
    pool: str

    def __str__(self) -> str:
        return f"{self.driver}/{self.pool}"


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeSelection:
    """Which nodes see a slice (or, with per-device selection, a device). At most one field is set."""

    node_name: str | None = None
    node_selector: Mapping[str, Any] | None = None  # a core/v1 NodeSelector
    all_nodes: bool = False
    per_device: bool = False  # slice level only: each device carries its own selection


@dataclass(frozen=True)
class CounterConsumption:
    counter_set: str
    counters: Mapping[str, Quantity]
    compatibility_groups: tuple[str, ...] = ()  # DRADeviceCompatibilityGroups (alpha, off in 1.37)


@dataclass(frozen=True)
class CounterSet:
    name: str
    counters: Mapping[str, Quantity]


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = ""

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


@dataclass(frozen=True)
class RequestPolicy:
    default: Quantity | None = None
    valid_values: tuple[Quantity, ...] = ()
    range_min: Quantity | None = None
    range_max: Quantity | None = None
    range_step: Quantity | None = None
    has_range: bool = False


@dataclass(frozen=True)
class Capacity:
    value: Quantity
    policy: RequestPolicy | None = None


@dataclass(frozen=True, eq=False)
class Device:
    name: str
    driver: str
    attributes: Mapping[str, Mapping[str, Any]]  # raw v1 attributes by (possibly unqualified) name
    capacity: Mapping[str, Capacity] = field(default_factory=dict)
    consumes_counters: tuple[CounterConsumption, ...] = ()
    taints: tuple[Taint, ...] = ()
    node: NodeSelection | None = None  # only with per-device node selection
    allow_multiple_allocations: bool = False
    binds_to_node: bool = False
    binding_conditions: tuple[str, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the v1 Device the view is built from

    @cached_property
    def view(self) -> DeviceView:
        """What CEL selectors see; built on first use, as most devices never meet a selector."""
        return device_view(self.driver, self.source)

    @cached_property
    def cel_invalid(self) -> str | None:
        """``view.invalid`` (why every selector fails on this device), found without building the view."""
        built = self.__dict__.get("view")
        return built.invalid if built is not None else attributes_invalid(self.source)

    def matches(self, selector: Selector) -> bool:
        """``selector.matches(self.view)``, through the selector's memo of results (``Selector.matches_source``)
        and this device's own (``selector_results``): the same device met again costs one lookup."""
        results = self.selector_results
        known = results.get(selector.expression)
        if known is None:
            try:
                known = selector.matches_source(self.driver, self.source, self.cel_invalid, lambda: self.view)
            except CelEvalError as e:
                known = e
            if len(results) >= _DEVICE_RESULTS_LIMIT:
                results.clear()
            results[selector.expression] = known
        if known is True or known is False:
            return known
        assert isinstance(known, CelEvalError)
        raise CelEvalError(known.expression, known.message)

    @cached_property
    def selector_results(self) -> dict[str, bool | CelEvalError]:
        """Selector expression -> its result on this device (a bool, or the runtime error to raise again).
        A selector's result is a function of the device, which is immutable, so it can be remembered here."""
        return {}

    @cached_property
    def plain_capacity(self) -> bool:
        """No request policy and no negative value: a request without capacity requests fits an unshared device."""
        return all(c.policy is None and c.value.nanos >= 0 for c in self.capacity.values())


@dataclass(frozen=True, eq=False)
class Slice:
    name: str
    driver: str
    pool: str
    generation: int
    resource_slice_count: int
    node: NodeSelection
    devices: tuple[Device, ...] = ()
    shared_counters: tuple[CounterSet, ...] = ()

    @cached_property
    def pool_id(self) -> PoolId:
        return PoolId(self.driver, self.pool)

    @cached_property
    def uses_compatibility_groups(self) -> bool:
        return any(c.compatibility_groups for d in self.devices for c in d.consumes_counters)

    # Facts of one slice that every pool built from it needs; slices are immutable, so they are worked out
    # once per parsed slice and shared by every ClusterState holding it.
    @cached_property
    def has_binding_conditions(self) -> bool:
        return any(d.binding_conditions for d in self.devices)

    @cached_property
    def device_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.devices)

    @cached_property
    def device_ids(self) -> tuple[DeviceId, ...]:
        """Each device's ID, in the order of ``devices``."""
        return tuple(DeviceId(self.driver, self.pool, d.name) for d in self.devices)

    @cached_property
    def duplicate_device_name(self) -> str | None:
        """The first device name listed more than once in this slice, if any."""
        names = self.device_names
        if len(set(names)) == len(names):
            return None
        return next(n for n in names if names.count(n) > 1)

    @cached_property
    def device_positions(self) -> Mapping[str, int]:
        """Device name -> its position in ``devices`` (the last one of a name listed more than once)."""
        return dict(zip(self.device_names, range(len(self.devices)), strict=True))

    def devices_named(self, names: Collection[str]) -> list[Device]:
        """Its devices with one of ``names``, in the order of ``devices``."""
        if self.duplicate_device_name is not None:
            return [d for d in self.devices if d.name in names]
        positions = self.device_positions
        return [self.devices[i] for i in sorted(positions[n] for n in names if n in positions)]

    @cached_property
    def consumptions(self) -> tuple[CounterConsumption, ...]:
        """The counter consumptions of its devices in order, each object once (parse shares equal ones)."""
        return tuple({id(c): c for d in self.devices for c in d.consumes_counters}.values())

    @cached_property
    def counter_needs(self) -> tuple[tuple[str, frozenset[str]], ...]:
        """Per counter set its devices consume from: the names of the counters they consume, together."""
        return _counter_needs(self.consumptions)


# Every node of one model has slices whose devices consume the same (shared: parse) consumption objects; what
# they need from the counter sets is worked out once per distinct tuple of them. An entry keeps its
# consumptions alive, so their ids in the key are not reused.
_NEEDS_LIMIT = 1024
_needs: dict[tuple[int, ...], tuple[tuple[CounterConsumption, ...], tuple[tuple[str, frozenset[str]], ...]]] = {}


def _counter_needs(consumptions: tuple[CounterConsumption, ...]) -> tuple[tuple[str, frozenset[str]], ...]:
    key = tuple(map(id, consumptions))
    found = _needs.get(key)
    if found is None:
        by_set: dict[str, set[str]] = {}
        for c in consumptions:
            by_set.setdefault(c.counter_set, set()).update(c.counters)
        if len(_needs) >= _NEEDS_LIMIT:
            _needs.clear()
        found = _needs[key] = (consumptions, tuple((name, frozenset(names)) for name, names in by_set.items()))
    return found[1]


@dataclass(frozen=True)
class DeviceClass:
    name: str
    selectors: tuple[str | None, ...] = ()  # CEL expressions; None for a selector of an unknown kind


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""


@dataclass(frozen=True)
class DeviceRequest:
    """An ``exactly`` request or one ``firstAvailable`` alternative (subrequest)."""

    name: str
    device_class: str
    selectors: tuple[str | None, ...] = ()
    mode: str = EXACT_COUNT
    count: int = 1
    admin_access: bool = False  # always False for subrequests
    tolerations: tuple[Toleration, ...] = ()
    capacity: Mapping[str, Quantity] | None = None  # capacity.requests
    derived_attributes: bool = False  # DRADerivedAttributes (alpha): the scheduler refuses such requests


@dataclass(frozen=True)
class Request:
    name: str
    exactly: DeviceRequest | None = None
    first_available: tuple[DeviceRequest, ...] = ()


@dataclass(frozen=True)
class Constraint:
    requests: tuple[str, ...] = ()
    match_attribute: str | None = None
    distinct_attribute: str | None = None

    def describe(self, index: int) -> str:
        kind, attribute = (
            ("matchAttribute", self.match_attribute)
            if self.match_attribute
            else ("distinctAttribute", self.distinct_attribute)
        )
        scope = ", ".join(self.requests) if self.requests else "all requests"
        return f"constraint #{index} ({kind} {attribute} on {scope})"


@dataclass(frozen=True)
class Claim:
    name: str
    namespace: str = ""
    uid: str = ""
    requests: tuple[Request, ...] = ()
    constraints: tuple[Constraint, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class AllocatedState:
    """Devices held by already-allocated claims, as kube-scheduler gathers them.

    Admin-access results are not counted; results with a share ID (consumable capacity) are shared and
    add their consumed capacity; all others hold the device exclusively.
    """

    devices: frozenset[DeviceId] = frozenset()
    shared: frozenset[tuple[DeviceId, str]] = frozenset()
    capacity: Mapping[DeviceId, Mapping[str, Quantity]] = field(default_factory=dict)
    shared_devices: frozenset[DeviceId] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shared_devices", frozenset(d for d, _ in self.shared))

    def is_allocated(self, device: DeviceId) -> bool:
        """Holds the device in any way (``internal.IsDeviceAllocated``): counts for shared counters."""
        return device in self.devices or device in self.shared_devices or device in self.capacity

    @cached_property
    def allocated_by_pool(self) -> Mapping[PoolId, frozenset[str]]:
        """The names of the devices ``is_allocated`` holds, by pool."""
        names: dict[PoolId, set[str]] = {}
        for device in (*self.devices, *self.shared_devices, *self.capacity):
            names.setdefault(PoolId(device.driver, device.pool), set()).add(device.device)
        return {pool: frozenset(held) for pool, held in names.items()}


@dataclass(frozen=True)
class ClusterState:
    slices: tuple[Slice, ...] = ()
    classes: Mapping[str, DeviceClass] = field(default_factory=dict)
    allocated: AllocatedState = field(default_factory=AllocatedState)

    @cached_property
    def index(self) -> SliceIndex:
        """The slices by node and by pool, built on first use (``gather_pools`` reads a node's slices here)."""
        return SliceIndex(self.slices)

    @cached_property
    def search_plans(self) -> dict[tuple[int, ...], tuple[tuple[Claim, ...], Mapping[tuple[int, int, int], Any]]]:
        """``Search.prepare``'s checked requests for a list of claims, by the claims' ids (the entry holds
        the claims, so the ids stay theirs): the same claims on the next node are not checked again."""
        return {}
