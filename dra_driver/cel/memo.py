"""Which device fields a selector reads, so that its result can be remembered per distinct values. Pure.

A selector's result is a function of the ``device`` it is handed: driver, ``allowMultipleAllocations``,
attributes and capacity (``DeviceView.cel_input``). When every use of ``device`` in the expression has one
of the forms ``device.driver``, ``device.allowMultipleAllocations``, ``device.attributes["<domain>"].<id>``
or ``device.capacity["<domain>"].<id>`` (plain double-quoted domain, no escapes, no ``/``), the result
depends only on those fields, and ``source_key`` names them for one device, read straight from its
v1 JSON without building its view: two devices with equal keys get equal results (a value or the same
runtime error). Any other use of the word ``device`` (``device.attributes["d"]`` alone, ``size(device
.attributes)``, a comprehension variable named ``device``, the word inside a string or a comment)
makes ``references`` return None and every device is evaluated. Thousands of devices of one model on
many nodes share a few keys, so most evaluations become one dict lookup.

``attributes_invalid`` is the device-wide check that ``device_view`` makes (an attribute without a usable
value fails every evaluation on the device), done without building the view; it comes first.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from dra_driver.cel.device import attribute_value

_WORD = re.compile(r"\bdevice\b")
_REF = re.compile(
    r"device\s*\.\s*(?:(?P<field>driver|allowMultipleAllocations)\b"
    r'|(?P<kind>attributes|capacity)\s*\[\s*"(?P<domain>[^"\\/]+)"\s*\]\s*\.\s*(?P<ident>[A-Za-z_][A-Za-z0-9_]*)\b)'
)
_MISSING = ("-",)  # an absent field in a key (a value is never this tuple)


@dataclass(frozen=True)
class Ref:
    kind: str  # attributes | capacity | allowMultipleAllocations | driver
    domain: str = ""
    ident: str = ""


def references(expression: str) -> tuple[Ref, ...] | None:
    """The device fields ``expression`` reads, or None when it may read others."""
    refs: list[Ref] = []
    for word in _WORD.finditer(expression):
        ref = _REF.match(expression, word.start())
        if ref is None:
            return None
        if ref["field"]:
            refs.append(Ref(ref["field"]))
        else:
            refs.append(Ref(ref["kind"], ref["domain"], ref["ident"]))
    return tuple(dict.fromkeys(refs))


def _frozen(raw: Any) -> Hashable:
    """A raw attribute as a key: its items and their types (1 == True, but str(1) != str(True))."""
    if raw is None:
        return _MISSING
    if type(raw) is dict:
        key = (tuple(raw.items()), tuple(map(type, raw.values())))
        try:
            hash(key)
            return key  # the usual {"string": ...}: no lists inside
        except TypeError:
            pass
    elif not isinstance(raw, Mapping):
        raise TypeError("not a mapping")
    return tuple((k, tuple((x, type(x)) for x in v) if isinstance(v, list) else (v, type(v))) for k, v in raw.items())


def source_key(refs: tuple[Ref, ...], driver: str, source: Mapping[str, Any]) -> tuple[Hashable, ...] | None:
    """What the referenced fields hold on this device (v1 JSON); None when it cannot be told cheaply."""
    key: list[Hashable] = [driver]
    try:
        for ref in refs:
            if ref.kind == "driver":
                continue
            if ref.kind == "allowMultipleAllocations":
                key.append(bool(source.get("allowMultipleAllocations", False)))
                continue
            fields = source.get(ref.kind) or {}
            qualified = fields.get(f"{ref.domain}/{ref.ident}")
            bare = fields.get(ref.ident) if ref.domain == driver else None
            if qualified is not None and bare is not None:
                return None  # which one the view keeps depends on their order
            raw = qualified if qualified is not None else bare
            if ref.kind == "capacity":
                key.append(_MISSING if raw is None else str(raw["value"]))
            else:
                key.append(_frozen(raw))
        hash(tuple(key))
    except (TypeError, KeyError):
        return None
    return tuple(key)


@lru_cache(maxsize=1024)
def _value_problem(kind: str, value: Hashable) -> str | None:
    try:
        attribute_value({kind: list(value) if isinstance(value, tuple) else value})
    except ValueError as e:
        return str(e)
    return None


def attributes_invalid(source: Mapping[str, Any]) -> str | None:
    """``device_view(driver, source).invalid``, without building the view."""
    for name, raw in (source.get("attributes") or {}).items():
        if type(raw) is dict and len(raw) == 1:  # one value field: the common case, checked cheaply
            if raw.get("string") is not None or raw.get("bool") is not None or type(raw.get("int")) is int:
                continue
            value = raw.get("version")
            kind = "version"
            if value is None:
                value, kind = raw.get("int"), "int"
            if value is not None:
                try:
                    problem = _value_problem(kind, value)
                except TypeError:  # unhashable: the slow way
                    problem = _problem(raw)
                if problem is not None:
                    return f"attribute {name}: {problem}"
                continue
        if (problem := _problem(raw)) is not None:
            return f"attribute {name}: {problem}"
    return None


def _problem(raw: Mapping[str, Any]) -> str | None:
    try:
        attribute_value(raw)
    except ValueError as e:
        return str(e)
    return None
