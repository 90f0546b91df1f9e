"""Shared counters of partitionable devices (KEP-4815): what is left, what a device needs. Pure.

Amounts are integers in nano-units. ``available`` is a pool's counter sets minus what the devices of
already-allocated claims consume (``checkAvailableCounters``' cache); a device fits when, after adding its
consumption to what the search is allocating, *every* counter of the pool stays within what is available,
so a pool that allocated claims over-commit admits no further counter-consuming device (as upstream).
``available`` is remembered per pool (pools are immutable and shared by ``gather_pools``' memo) for the
last allocated state it was asked with; callers must not change what it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from weakref import WeakKeyDictionary

from dra_driver.structured.model import AllocatedState, CounterConsumption
from dra_driver.structured.pools import Pool

Counts = dict[str, dict[str, int]]  # counter set -> counter -> nano-units
Left = Mapping[str, Mapping[str, int]]  # what ``available`` returns: read only

# per pool: the allocated state asked with, what is left then, and whether some counter is below zero
_available: WeakKeyDictionary[Pool, tuple[AllocatedState, Left, bool]] = WeakKeyDictionary()


def _remembered(pool: Pool, allocated: AllocatedState) -> tuple[AllocatedState, Left, bool]:
    remembered = _available.get(pool)
    if remembered is None or remembered[0] is not allocated:
        left = _available_now(pool, allocated)
        overdrawn = any(amount < 0 for counters in left.values() for amount in counters.values())
        remembered = _available[pool] = (allocated, left, overdrawn)
    return remembered


def available(pool: Pool, allocated: AllocatedState) -> Left:
    return _remembered(pool, allocated)[1]


def fits(pool: Pool, allocated: AllocatedState, consumed: Mapping[str, Mapping[str, int]]) -> bool:
    """``not exceeded(available(pool, allocated), consumed)``, looking only at the counters consumed."""
    _, left, overdrawn = _remembered(pool, allocated)
    if overdrawn:  # a counter nothing consumes can be exceeded too
        return not exceeded(left, consumed)
    for set_name, amounts in consumed.items():
        have = left.get(set_name)
        if have is not None:
            for name, amount in amounts.items():
                if name in have and have[name] < amount:
                    return False
    return True


def _available_now(pool: Pool, allocated: AllocatedState) -> Counts:
    left = {cs.name: {n: q.nanos for n, q in cs.counters.items()} for cs in pool.counter_sets.values()}
    held = allocated.allocated_by_pool.get(pool.id)
    if not held:
        return left
    for slice_ in pool.slices + pool.other_slices:
        for device in slice_.devices_named(held):
            for consumption in device.consumes_counters:
                counters = left.get(consumption.counter_set, {})
                for name, amount in consumption.counters.items():
                    if name in counters:
                        counters[name] -= amount.nanos
    return left


def add(counts: Counts, consumption: Iterable[CounterConsumption], sign: int = 1) -> None:
    for c in consumption:
        counters = counts.setdefault(c.counter_set, {})
        for name, amount in c.counters.items():
            counters[name] = counters.get(name, 0) + sign * amount.nanos


def exceeded(left: Mapping[str, Mapping[str, int]], consumed: Mapping[str, Mapping[str, int]]) -> list[tuple[str, str]]:
    """(counter set, counter) pairs where ``consumed`` is more than is ``left``."""
    return [
        (set_name, name)
        for set_name, counters in left.items()
        for name, amount in counters.items()
        if amount < consumed.get(set_name, {}).get(name, 0)
    ]
