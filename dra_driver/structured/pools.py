"""The resource pools a node can allocate from (port of ``GatherPools``, "incubating" allocator). Pure.

- Only slices with ``nodeName`` equal to the node's or without ``nodeName`` are looked at first; of those
  the ones whose node selection (slice level, or any device with per-device selection) admits the node.
- Per (driver, pool) only the highest ``generation`` counts. A pool is complete when it has
  ``resourceSliceCount`` slices of that generation; if the node's view is short, all slices of the pool are
  consulted (slices holding only shared counters usually do not target the node). A newer generation found
  that way makes the pool obsolete and it is dropped; still short means *incomplete*.
- Invalid pools: duplicate device names, duplicate counter sets, or a device consuming an unknown counter.
- Slices whose devices use compatibility groups (alpha DRADeviceCompatibilityGroups, off) are ignored,
  which leaves their pool incomplete.
- Order: by driver then pool name; pools with binding conditions last. Slices by name, devices as listed.

Given a ``ClusterState``, a node's slices come from its index (``slice_index``) rather than a scan of the
whole cluster, and a pool built once from the same visible slices is reused: nodes and calls share the
``Pool`` (it is immutable). Given a plain sequence of slices, an index is built for the one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from dra_driver.structured.model import ClusterState, CounterSet, Node, PoolId, Slice
from dra_driver.structured.nodeselect import node_matches
from dra_driver.structured.slice_index import SliceIndex


@dataclass(frozen=True, eq=False)
class Pool:
    id: PoolId
    slices: tuple[Slice, ...] = ()  # device slices visible from the node, by name
    other_slices: tuple[Slice, ...] = ()  # device slices of the pool the node does not see (for counters)
    counter_sets: Mapping[str, CounterSet] = field(default_factory=dict)
    incomplete: bool = False
    invalid: str | None = None  # why the pool cannot be used
    seen: int = 0  # slices of the current generation found
    expected: int = 0  # resourceSliceCount

    @property
    def usable(self) -> bool:
        return not self.incomplete and self.invalid is None

    @cached_property
    def has_binding_conditions(self) -> bool:
        return any(s.has_binding_conditions for s in self.slices)


_new = object.__new__
_NO_COUNTER_SETS: Mapping[str, CounterSet] = MappingProxyType({})


def _make(
    pool_id: PoolId,
    slices: tuple[Slice, ...] = (),
    other_slices: tuple[Slice, ...] = (),
    counter_sets: Mapping[str, CounterSet] = _NO_COUNTER_SETS,
    incomplete: bool = False,
    invalid: str | None = None,
    seen: int = 0,
    expected: int = 0,
) -> Pool:
    """``Pool(...)`` with every field set at once, as ``parse._device`` builds devices: a frozen dataclass's
    ``__init__`` sets them one by one through ``object.__setattr__`` (2-3 µs a pool, a pool per node and pass)."""
    pool = _new(Pool)
    pool.__dict__.update(
        id=pool_id,
        slices=slices,
        other_slices=other_slices,
        counter_sets=counter_sets,
        incomplete=incomplete,
        invalid=invalid,
        seen=seen,
        expected=expected,
    )
    return pool


def slice_visible(slice_: Slice, node: Node) -> bool:
    """Is a slice relevant for the node (slice-level selection, or any device's own selection)?"""
    selection = slice_.node
    if selection.node_name or selection.all_nodes or selection.node_selector is not None:
        return node_matches(node, selection)
    if selection.per_device:
        return any(d.node is not None and node_matches(node, d.node) for d in slice_.devices)
    return False  # some future kind of node selection: not for us


def gather_pools(source: ClusterState | Sequence[Slice], node: Node) -> tuple[Pool, ...]:
    """The node's pools, sorted. Given a ``ClusterState``, its slice index and pool memo are used."""
    index = source.index if isinstance(source, ClusterState) else SliceIndex(source)
    current: dict[PoolId, list[Slice]] = {}
    name = node.name
    for slice_ in index.candidates(name):
        if slice_.uses_compatibility_groups:
            continue
        selected = slice_.node.node_name
        if not (selected == name if selected else slice_visible(slice_, node)):  # a named node: the common case
            continue
        known = current.get(slice_.pool_id)
        if known is None or slice_.generation > known[0].generation:
            current[slice_.pool_id] = [slice_]
        elif slice_.generation == known[0].generation:
            known.append(slice_)
    pools: list[Pool] = []
    memo = index.pools
    for pool_id, visible in current.items():
        key = tuple(visible)  # slices compare by identity
        if key in memo:
            pool = memo[key]
        else:
            pool = memo[key] = _pool(index, pool_id, visible)
        if pool is not None:
            pools.append(pool)
    if len(pools) > 1:
        pools.sort(key=lambda p: (p.has_binding_conditions, p.id.driver, p.id.pool))
    return tuple(pools)


def _pool(index: SliceIndex, pool_id: PoolId, visible: list[Slice]) -> Pool | None:
    """The pool as the node sees ``visible`` of its slices; None when a newer generation replaces it."""
    generation, expected = visible[0].generation, visible[0].resource_slice_count
    every = visible
    if len(visible) != expected:
        same_pool = index.pool(pool_id)
        if any(s.generation > generation for s in same_pool):
            return None  # the driver is replacing this generation: ignore it
        every = [s for s in same_pool if s.generation == generation and not s.uses_compatibility_groups]
        if len(every) != expected:
            return _make(pool_id, incomplete=True, seen=len(every), expected=expected)
    return _build_pool(pool_id, visible, every, expected)


def _build_pool(pool_id: PoolId, visible: list[Slice], every: list[Slice], expected: int) -> Pool:
    if len(every) == 1:  # one slice, which the node sees (visible is every): the common case, without sorting
        only = every[0]
        if not only.shared_counters and not only.consumptions:  # devices without counters: only names to check
            duplicate = only.duplicate_device_name
            invalid = None if duplicate is None else f"duplicate device name {duplicate}"
            return _make(pool_id, (only,), invalid=invalid, seen=1, expected=expected)
        device_slices, other, counter_slices = ([], [], [only]) if only.shared_counters else ([only], [], [])
    else:
        visible_names = {s.name for s in visible}
        device_slices = sorted((s for s in visible if not s.shared_counters), key=lambda s: s.name)
        other = [s for s in every if s.name not in visible_names and not s.shared_counters]
        counter_slices = sorted((s for s in visible if s.shared_counters), key=lambda s: s.name) + [
            s for s in every if s.name not in visible_names and s.shared_counters
        ]
    slices, other_slices, seen = tuple(device_slices), tuple(other), len(every)
    if (duplicate := _duplicate_name(device_slices)) is not None:
        return _make(
            pool_id, slices, other_slices, invalid=f"duplicate device name {duplicate}", seen=seen, expected=expected
        )
    if not counter_slices and not any(s.consumptions for s in device_slices + other):
        return _make(pool_id, slices, other_slices, seen=seen, expected=expected)  # no counters: nothing to check
    counter_sets: dict[str, CounterSet] = {}
    for slice_ in counter_slices:
        for counter_set in slice_.shared_counters:
            if counter_set.name in counter_sets:
                duplicated = f"duplicate counter set name {counter_set.name}"
                return _make(pool_id, slices, other_slices, invalid=duplicated, seen=seen, expected=expected)
            counter_sets[counter_set.name] = counter_set
    if (why := _unknown_counter(device_slices + other, counter_sets)) is not None:
        return _make(pool_id, slices, other_slices, invalid=why, seen=seen, expected=expected)
    return _make(pool_id, slices, other_slices, counter_sets, seen=seen, expected=expected)


def _duplicate_name(device_slices: list[Slice]) -> str | None:
    """The first device name (slices in order) that more than one device of the pool has."""
    if len(device_slices) == 1:
        return device_slices[0].duplicate_device_name
    if all(s.duplicate_device_name is None for s in device_slices):
        total = sum(len(s.device_names) for s in device_slices)
        if len(set().union(*(s.device_names for s in device_slices))) == total:
            return None
    names = [n for s in device_slices for n in s.device_names]
    return next(n for n in names if names.count(n) > 1)


def _unknown_counter(device_slices: list[Slice], counter_sets: Mapping[str, CounterSet]) -> str | None:
    """Why a device consumes a counter the pool does not have (the first such consumption), if one does."""
    for slice_ in device_slices:
        for set_name, names in slice_.counter_needs:  # what all its devices consume, per counter set
            known = counter_sets.get(set_name)
            if known is None or not known.counters.keys() >= names:
                return _first_unknown_counter(device_slices, counter_sets)
    return None


def _first_unknown_counter(device_slices: list[Slice], counter_sets: Mapping[str, CounterSet]) -> str | None:
    checked: set[int] = set()  # a consumption seen before passed (the first failure returns)
    for slice_ in device_slices:
        for consumption in slice_.consumptions:
            if id(consumption) in checked:
                continue
            checked.add(id(consumption))
            known = counter_sets.get(consumption.counter_set)
            if known is None:
                return f"counter set {consumption.counter_set} not found"
            if consumption.counters.keys() <= known.counters.keys():
                continue
            name = next(n for n in consumption.counters if n not in known.counters)
            return f"counter {name} not found in counter set {known.name}"
    return None
