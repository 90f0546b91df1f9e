"""What a driver publishes about a node, independent of the resource.k8s.io API version. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field

AttrValue = int | bool | str


@dataclass(frozen=True)
class Version:
    """A semantic-version attribute value (``{"version": "8.0.0"}`` in the API)."""

    text: str


Attr = AttrValue | Version


@dataclass(frozen=True)
class RequestPolicy:
    """How much of a consumable capacity one allocation may request (consumable capacity, KEP-5075)."""

    default: str
    min: str
    step: str
    max: str | None = None


@dataclass(frozen=True)
class Capacity:
    value: str
    policy: RequestPolicy | None = None


@dataclass(frozen=True)
class CounterConsumption:
    counter_set: str
    counters: tuple[tuple[str, str], ...]  # (counter, quantity)


@dataclass(frozen=True)
class DeviceTaint:
    """A taint on a published device (``effect``: NoSchedule, NoExecute or None, the informational one).

    ``time_added`` (RFC 3339) is set by the driver, not left to the API server, so what is published compares
    equal to what the server returns."""

    key: str
    value: str
    effect: str
    time_added: str


@dataclass(frozen=True)
class Device:
    name: str
    attributes: tuple[tuple[str, Attr], ...]
    capacity: tuple[tuple[str, Capacity], ...]
    consumes: tuple[CounterConsumption, ...] = ()
    allow_multiple_allocations: bool = False
    taints: tuple[DeviceTaint, ...] = ()

    def attribute(self, name: str) -> Attr | None:
        return dict(self.attributes).get(name)


@dataclass(frozen=True)
class CounterSet:
    name: str
    counters: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SliceContent:
    """One ResourceSlice's payload: devices, or (where the server wants them apart) counter sets, or both."""

    devices: tuple[Device, ...] = ()
    counter_sets: tuple[CounterSet, ...] = ()


@dataclass(frozen=True)
class Pool:
    """Everything one node publishes for the driver, in slice order (first-fit walks slices by name)."""

    driver: str
    node: str
    slices: tuple[SliceContent, ...]
    notes: tuple[str, ...] = field(default=())  # what was degraded and why, for logs and `dra-gpu slices`

    def devices(self) -> tuple[Device, ...]:
        return tuple(d for s in self.slices for d in s.devices)
