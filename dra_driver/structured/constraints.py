"""Claim constraints: ``matchAttribute`` and ``distinctAttribute`` (port of "incubating"). Stateful helpers.

Both are tracked incrementally during the search: ``add`` is called when a device is about to be allocated
for a request, ``remove`` (with the same arguments) when that choice is undone. A constraint applies to the
requests it names (a parent request name also covers its subrequests, ``parent/sub`` only that one) or to
all requests when it names none. Attributes compare by kind and value; versions as strings; list-valued
attributes never satisfy a constraint here (list support is the alpha DRAListTypeAttributes gate).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dra_driver.structured.model import Constraint, Device, DeviceId

Scalar = tuple[str, Any]  # (kind, value)
_KINDS = ("string", "int", "bool", "version")


def lookup_attribute(device: Device, device_id: DeviceId, qualified: str) -> Mapping[str, Any] | None:
    """The raw attribute named ``domain/name``; the driver's own domain also finds a bare ``name``."""
    if qualified in device.attributes:
        return device.attributes[qualified]
    domain, sep, name = qualified.partition("/")
    if not sep or domain != device_id.driver:
        return None
    return device.attributes.get(name)


def scalar(attribute: Mapping[str, Any]) -> Scalar | None:
    for kind in _KINDS:
        if attribute.get(kind) is not None:
            return kind, attribute[kind]
    return None


class ConstraintState:
    def __init__(self, constraint: Constraint) -> None:
        self.constraint = constraint
        self.requests = frozenset(constraint.requests)
        self.attribute = constraint.match_attribute or constraint.distinct_attribute or ""
        self.count = 0

    def applies(self, request: str, subrequest: str) -> bool:
        if not self.requests:
            return True
        return request in self.requests or (bool(subrequest) and f"{request}/{subrequest}" in self.requests)

    def add(self, request: str, subrequest: str, device: Device, device_id: DeviceId) -> bool:
        raise NotImplementedError

    def remove(self, request: str, subrequest: str, device: Device, device_id: DeviceId) -> None:
        raise NotImplementedError


class MatchAttribute(ConstraintState):
    value: Scalar | None = None

    def add(self, request: str, subrequest: str, device: Device, device_id: DeviceId) -> bool:
        if not self.applies(request, subrequest):
            return True
        attribute = lookup_attribute(device, device_id, self.attribute)
        if attribute is None:
            return False
        value = scalar(attribute)
        if self.count == 0:
            self.value, self.count = value, 1
            return True
        if value is None or value != self.value:
            return False
        self.count += 1
        return True

    def remove(self, request: str, subrequest: str, device: Device, device_id: DeviceId) -> None:
        if self.applies(request, subrequest):
            self.count -= 1


class DistinctAttribute(ConstraintState):
    def __init__(self, constraint: Constraint) -> None:
        super().__init__(constraint)
        self.values: list[Scalar | None] = []  # one per device added, removed last-in first-out

    def add(self, request: str, subrequest: str, device: Device, device_id: DeviceId) -> bool:
        if not self.applies(request, subrequest):
            return True
        attribute = lookup_attribute(device, device_id, self.attribute)
        if attribute is None:
            return False
        value = scalar(attribute)
        if self.values and (value is None or value in self.values):
            return False
        self.values.append(value)
        return True

    def remove(self, request: str, subrequest: str, device: Device, device_id: DeviceId) -> None:
        if self.applies(request, subrequest):
            self.values.pop()


def constraint_state(constraint: Constraint) -> ConstraintState:
    return MatchAttribute(constraint) if constraint.match_attribute else DistinctAttribute(constraint)
