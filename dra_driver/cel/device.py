"""The ``device`` a DRA selector sees, built from a ResourceSlice device (resource.k8s.io/v1 JSON). Pure.

Attribute and capacity names are split into (domain, id); a bare name belongs to the driver's domain, as
in ``k8s.io/dynamic-resource-allocation/cel`` ``DeviceMatches``. An attribute without a usable value (no
value field set, or a version that is not semver) makes the whole device unusable for CEL: like upstream,
every selector evaluation on it fails with that message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from dra_driver.cel.protos import to_cel
from dra_driver.cel.quantity import Quantity, parse_quantity
from dra_driver.cel.semver import Semver, parse_semver

ScalarValue = int | bool | str | Semver
AttributeValue = ScalarValue | tuple[ScalarValue, ...]


@dataclass(frozen=True, eq=False)
class DeviceView:
    driver: str
    name: str
    attributes: Mapping[str, Mapping[str, AttributeValue]] = field(default_factory=dict)
    capacity: Mapping[str, Mapping[str, Quantity]] = field(default_factory=dict)
    allow_multiple_allocations: bool = False
    invalid: str | None = None  # set when an attribute has no usable value; evaluation then fails with it
    # CEL activations built for this device, by the set of empty domains added (see environment.Selector)
    activations: dict[frozenset[str], Any] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def cel_input(self) -> dict[str, Any]:
        """The ``device`` value handed to CEL (quantities and versions as their CEL message types)."""
        return {
            "driver": self.driver,
            "allowMultipleAllocations": self.allow_multiple_allocations,
            "attributes": {d: {k: to_cel(v) for k, v in ids.items()} for d, ids in self.attributes.items()},
            "capacity": {d: {k: to_cel(v) for k, v in ids.items()} for d, ids in self.capacity.items()},
        }


def split_qualified_name(name: str, default_domain: str) -> tuple[str, str]:
    """``"gpu.example.com/model"`` → (domain, id); a bare ``"model"`` belongs to ``default_domain``."""
    domain, sep, ident = name.partition("/")
    return (domain, ident) if sep else (default_domain, name)


def device_view(driver: str, device: Mapping[str, Any]) -> DeviceView:
    """DeviceView of one v1 ``Device`` dict (``{"name", "attributes", "capacity", ...}``) of ``driver``."""
    attributes: dict[str, dict[str, AttributeValue]] = {}
    invalid = None
    for name, raw in (device.get("attributes") or {}).items():
        try:
            value = attribute_value(raw)
        except ValueError as e:
            invalid = invalid or f"attribute {name}: {e}"
            continue
        domain, ident = split_qualified_name(name, driver)
        attributes.setdefault(domain, {})[ident] = value
    capacity: dict[str, dict[str, Quantity]] = {}
    for name, raw in (device.get("capacity") or {}).items():
        domain, ident = split_qualified_name(name, driver)
        capacity.setdefault(domain, {})[ident] = parse_quantity(str(raw["value"]))
    return DeviceView(
        driver=driver,
        name=str(device.get("name", "")),
        attributes=attributes,
        capacity=capacity,
        allow_multiple_allocations=bool(device.get("allowMultipleAllocations", False)),
        invalid=invalid,
    )


def attribute_value(raw: Mapping[str, Any]) -> AttributeValue:
    """The value of one v1 ``DeviceAttribute`` (lists first, then scalars, like upstream's getAttributeValue)."""
    if raw.get("ints") is not None:
        return tuple(int(v) for v in raw["ints"])
    if raw.get("bools") is not None:
        return tuple(bool(v) for v in raw["bools"])
    if raw.get("strings") is not None:
        return tuple(str(v) for v in raw["strings"])
    if raw.get("versions") is not None:
        return tuple(_version(str(v)) for v in raw["versions"])
    if raw.get("int") is not None:
        return int(raw["int"])
    if raw.get("bool") is not None:
        return bool(raw["bool"])
    if raw.get("string") is not None:
        return str(raw["string"])
    if raw.get("version") is not None:
        return _version(str(raw["version"]))
    raise ValueError("unsupported attribute value")


def _version(text: str) -> Semver:
    try:
        return parse_semver(text)
    except ValueError as e:
        raise ValueError(f"parse semantic version: {e}") from e
