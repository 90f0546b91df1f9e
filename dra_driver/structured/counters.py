"""Shared counters of partitionable devices (KEP-4815): what is left, what a device needs. Pure.

Amounts are integers in nano-units. ``available`` is a pool's counter sets minus what the devices of
already-allocated claims consume (``checkAvailableCounters``' cache); a device fits when, after adding its
consumption to what the search is allocating, *every* counter of the pool stays within what is available,
so a pool that allocated claims over-commit admits no further counter-consuming device (as upstream).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dra_driver.structured.model import AllocatedState, CounterConsumption, DeviceId
from dra_driver.structured.pools import Pool

Counts = dict[str, dict[str, int]]  # counter set -> counter -> nano-units


def available(pool: Pool, allocated: AllocatedState) -> Counts:
    left = {cs.name: {n: q.nanos for n, q in cs.counters.items()} for cs in pool.counter_sets.values()}
    for slice_ in pool.slices + pool.other_slices:
        for device in slice_.devices:
            if not allocated.is_allocated(DeviceId(pool.id.driver, pool.id.pool, device.name)):
                continue
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
