"""Allocation as the scheduler would do it, node by node, while the planner places units. Pure.

Each node keeps its own ``ClusterState`` (its slices, the classes, the devices its pools hold): a unit placed
on a node changes that node's state only, so the other nodes keep the pools and counters the allocator
remembered for them. The devices held, kept by pool, grow as units are placed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dra_driver.cel import Quantity
from dra_driver.errors import ConfigError
from dra_driver.structured import Allocation, ClusterState, Node, allocated_state, parse_slice
from dra_driver.structured.allocate import as_claims, precheck
from dra_driver.structured.model import AllocatedState, Claim, DeviceClass, DeviceId, PoolId, Slice
from dra_driver.structured.pools import gather_pools
from dra_driver.structured.results import claim_allocation
from dra_driver.structured.search import Fatal, OutOfSteps, Search

Obj = Mapping[str, Any]
MAX_STEPS = 20_000  # per allocation: a unit the search cannot settle within this is treated as not fitting


def fits(cluster: ClusterState, claims: Sequence[Claim | Obj], node: Node) -> Allocation | None:
    """``allocate_claims``'s answer when it is an ``Allocation``, else None, without working out why not
    (the planner asks thousands of times and needs no diagnosis; ``allocate_claims`` always makes one)."""
    parsed = as_claims(claims)
    if precheck(cluster, parsed, node) is not None:
        return None
    try:
        search = Search(parsed, gather_pools(cluster, node), cluster, node, MAX_STEPS)
        search.prepare()
        if not search.run():
            return None
    except (ConfigError, Fatal, OutOfSteps):
        return None
    return Allocation(node.name, tuple(claim_allocation(c, search.results[i], node.name) for i, c in enumerate(parsed)))


def merge(a: AllocatedState, b: AllocatedState) -> AllocatedState:
    capacity: dict[DeviceId, dict[str, Quantity]] = {d: dict(c) for d, c in a.capacity.items()}
    for device, held in b.capacity.items():
        mine = capacity.setdefault(device, {})
        for name, value in held.items():
            mine[name] = mine.get(name, Quantity(0)) + value
    return AllocatedState(a.devices | b.devices, a.shared | b.shared, capacity)


def by_pool(held: AllocatedState) -> dict[PoolId, AllocatedState]:
    """``held`` split by pool (a node's state then carries only what its own pools hold)."""
    parts: dict[PoolId, tuple[set[DeviceId], set[tuple[DeviceId, str]], dict[DeviceId, Mapping[str, Quantity]]]] = {}

    def part(d: DeviceId) -> tuple[set[DeviceId], set[tuple[DeviceId, str]], dict[DeviceId, Mapping[str, Quantity]]]:
        return parts.setdefault(PoolId(d.driver, d.pool), (set(), set(), {}))

    for d in held.devices:
        part(d)[0].add(d)
    for d, share in held.shared:
        part(d)[1].add((d, share))
    for d, c in held.capacity.items():
        part(d)[2][d] = c
    return {p: AllocatedState(frozenset(a), frozenset(b), c) for p, (a, b, c) in parts.items()}


class NodeSim:
    """The nodes' states; ``place`` allocates a unit on a node and keeps what it took."""

    def __init__(
        self,
        slices_by_node: Mapping[str, Sequence[Slice]],
        unnamed: Sequence[Slice],
        classes: Mapping[str, DeviceClass],
        held: Mapping[PoolId, AllocatedState],
        labels: Mapping[str, Mapping[str, str]],
    ) -> None:
        self._slices = {n: tuple(s) for n, s in slices_by_node.items()}
        self._unnamed = tuple(unnamed)
        self.classes = classes
        self._held = dict(held)
        self.labels = labels
        self._states: dict[str, ClusterState] = {}

    def slices(self, node: str) -> tuple[Slice, ...]:
        return self._slices.get(node, ()) + self._unnamed

    def held(self, pool: PoolId) -> frozenset[str]:
        """Names of the devices of ``pool`` that claims (allocated, or placed here) hold."""
        state = self._held.get(pool)
        return state.allocated_by_pool.get(pool, frozenset()) if state else frozenset()

    def _pools(self, node: str) -> set[PoolId]:
        return {s.pool_id for s in self._slices.get(node, ()) + self._unnamed}

    def state(self, node: str) -> ClusterState:
        if node not in self._states:
            parts = [self._held[p] for p in sorted(self._pools(node), key=str) if p in self._held]
            held = parts[0] if len(parts) == 1 else AllocatedState()
            for extra in parts if len(parts) > 1 else ():
                held = merge(held, extra)
            self._states[node] = ClusterState(self._slices.get(node, ()) + self._unnamed, self.classes, held)
        return self._states[node]

    def try_place(self, node: str, claims: Sequence[Claim | Obj]) -> Allocation | None:
        return fits(self.state(node), claims, Node(node, dict(self.labels.get(node, {}))))

    def keep(self, node: str, allocation: Allocation) -> None:
        taken = allocated_state([{"status": {"allocation": c.to_api()}} for c in allocation.claims])
        for pool, part in by_pool(taken).items():
            self._held[pool] = merge(self._held[pool], part) if pool in self._held else part
            shared = any(s.pool_id == pool for s in self._unnamed)
            for other in list(self._states) if shared else [node]:
                self._states.pop(other, None)

    def place(self, node: str, claims: Sequence[Claim | Obj]) -> Allocation | None:
        allocation = self.try_place(node, claims)
        if allocation is not None:
            self.keep(node, allocation)
        return allocation

    def replace_node(self, node: str, slices: Sequence[Obj]) -> None:
        """Give ``node`` other slices (v1 JSON): what it will publish after a change."""
        self._slices[node] = tuple(parse_slice(s) for s in slices)
        self._states.pop(node, None)

    def fork(self, node: str, slices: Sequence[Obj]) -> NodeSim:
        """A copy in which only ``node`` exists, with other slices (for trying a candidate)."""
        other = NodeSim({node: ()}, self._unnamed, self.classes, self._held, self.labels)
        other.replace_node(node, slices)
        return other
