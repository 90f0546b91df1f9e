"""Undo one candidate's effect on the search state exactly (port of ``rollbackDevice``). Mutable.

``_allocate_device`` records each change as it makes it; calling the record reverts those changes in
reverse order, both when the candidate is rejected part-way and when the search backtracks over it.
Consumed capacity follows ``ConsumedCapacityCollection``: an entry, even an empty one, marks a
multi-allocatable device as shared (its counters are then not charged again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dra_driver.cel import Quantity
from dra_driver.structured import counters
from dra_driver.structured.constraints import ConstraintState
from dra_driver.structured.model import DeviceId, PoolId
from dra_driver.structured.search_types import Candidate, Chosen, RequestData

if TYPE_CHECKING:
    from dra_driver.structured.search import Search

Held = dict[DeviceId, dict[str, Quantity]]


class Rollback:
    """What ``_allocate_device`` changed for one candidate so far; calling it reverts those changes."""

    __slots__ = (
        "allocating",
        "allocating_capacity",
        "cand",
        "capacity",
        "capacity_existed",
        "ci",
        "constraints",
        "constraints_added",
        "consumed_counters",
        "counters",
        "data",
        "marked",
        "previous",
        "result",
        "results",
    )

    def __init__(self, search: Search, ci: int, cand: Candidate, data: RequestData) -> None:
        self.ci, self.cand, self.data = ci, cand, data
        self.results: list[Chosen] = search.results[ci]
        self.allocating: dict[DeviceId, set[int]] = search.allocating
        self.allocating_capacity: Held = search.allocating_capacity
        self.constraints: list[ConstraintState] = search.constraints[ci]
        self.consumed_counters: dict[PoolId, counters.Counts] = search.consumed_counters
        self.counters = False  # the candidate's counters were added to consumed_counters
        self.constraints_added = 0  # the first this many constraints took the candidate
        self.marked = False  # the candidate was marked as being allocated for claim ci
        self.capacity: dict[str, Quantity] | None = None  # capacity it consumes, added to allocating_capacity
        self.capacity_existed = False  # allocating_capacity had an entry for it before
        self.result = False  # it was appended to results, at position ``previous``
        self.previous = 0

    def __call__(self) -> None:
        device_id = self.cand.id
        if self.result:
            del self.results[self.previous :]
        if self.capacity is not None:
            remove(self.allocating_capacity, device_id, self.capacity)
            if self.capacity_existed and device_id not in self.allocating_capacity:
                self.allocating_capacity[device_id] = {}
        if self.marked:
            self.allocating[device_id].discard(self.ci)
        for state in reversed(self.constraints[: self.constraints_added]):
            state.remove(self.data.base, self.data.sub, self.cand.device, device_id)
        if self.counters:
            counters.add(self.consumed_counters[self.cand.pool.id], self.cand.device.consumes_counters, -1)


def insert(held: Held, device_id: DeviceId, amounts: dict[str, Quantity]) -> None:
    """``ConsumedCapacityCollection.Insert``."""
    entry = held.setdefault(device_id, {})
    for name, amount in amounts.items():
        entry[name] = entry.get(name, Quantity(0)) + amount


def remove(held: Held, device_id: DeviceId, amounts: dict[str, Quantity]) -> None:
    """``ConsumedCapacityCollection.Remove``: subtract known entries, forget the device once all are zero."""
    entry = held.get(device_id)
    if entry is None:
        return
    for name, amount in amounts.items():
        if name in entry:
            entry[name] = entry[name] - amount
    if all(q.nanos == 0 for q in entry.values()):
        del held[device_id]
