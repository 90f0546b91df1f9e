"""Why a claim cannot be allocated on a node: a closed set of reasons, each able to say itself. Pure.

Request names are as in allocation results: ``request`` or ``request/subrequest``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassNotFound:
    request: str
    device_class: str

    def __str__(self) -> str:
        return f"request {self.request}: device class {self.device_class} does not exist"


@dataclass(frozen=True)
class IncompletePool:
    pool: str
    seen: int
    expected: int

    def __str__(self) -> str:
        return f"pool {self.pool} is incomplete ({self.seen} of {self.expected} slices published): its devices are not used"


@dataclass(frozen=True)
class InvalidPool:
    pool: str
    why: str

    def __str__(self) -> str:
        return f"pool {self.pool} is invalid ({self.why}): its devices are not used"


@dataclass(frozen=True)
class NoMatchingDevice:
    request: str
    candidates: int  # devices in usable pools on the node

    def __str__(self) -> str:
        if not self.candidates:
            return f"request {self.request}: the node has no devices in complete pools"
        return f"request {self.request}: the class and request selectors match none of {self.candidates} devices"


@dataclass(frozen=True)
class NotEnoughDevices:
    request: str
    needed: int
    usable: int
    matching: int

    def __str__(self) -> str:
        return (
            f"request {self.request}: {self.needed} device(s) needed, {self.usable} of {self.matching}"
            " matching device(s) can be allocated"
        )


@dataclass(frozen=True)
class DevicesInUse:
    request: str
    devices: int

    def __str__(self) -> str:
        return f"request {self.request}: {self.devices} matching device(s) are allocated to other claims"


@dataclass(frozen=True)
class TaintsNotTolerated:
    request: str
    devices: int
    taints: tuple[str, ...]

    def __str__(self) -> str:
        taints = ", ".join(self.taints)
        return f"request {self.request}: {self.devices} matching device(s) have taints it does not tolerate ({taints})"


@dataclass(frozen=True)
class CountersExhausted:
    request: str
    pool: str
    counter_set: str
    counters: tuple[str, ...]
    devices: int

    def __str__(self) -> str:
        return (
            f"request {self.request}: counter set {self.counter_set} in pool {self.pool} has too little"
            f" {', '.join(self.counters)} left for {self.devices} matching device(s)"
        )


@dataclass(frozen=True)
class CapacityExhausted:
    request: str
    devices: int
    detail: str  # the first capacity that does not fit

    def __str__(self) -> str:
        return f"request {self.request}: {self.devices} matching device(s) lack capacity ({self.detail})"


@dataclass(frozen=True)
class SelectorError:
    request: str
    message: str

    def __str__(self) -> str:
        return f"request {self.request}: {self.message}"


@dataclass(frozen=True)
class ConstraintNotSatisfied:
    constraint: str  # Constraint.describe()

    def __str__(self) -> str:
        return f"{self.constraint} cannot be satisfied by the available devices"


@dataclass(frozen=True)
class DevicesContended:
    requests: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"requests {', '.join(self.requests)} can each be satisfied, but not together"
            " (they compete for the same devices or counters)"
        )


Reason = (
    ClassNotFound
    | IncompletePool
    | InvalidPool
    | NoMatchingDevice
    | NotEnoughDevices
    | DevicesInUse
    | TaintsNotTolerated
    | CountersExhausted
    | CapacityExhausted
    | SelectorError
    | ConstraintNotSatisfied
    | DevicesContended
)
