"""A small structural schema language and its checker: unknown (misspelt) fields, required fields, types,
enumerations and list sizes, each reported at its field path with what would be valid. Pure.

The resource.k8s.io structures written in it live in ``shapes``; rules that need more than one field
(exactly one of, references between fields) live in ``rules``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from api.config.strict import type_name
from cli.lint.findings import Issue
from dra_driver.cel import parse_quantity

ScalarType: TypeAlias = Literal["string", "integer", "boolean", "quantity"]


@dataclass(frozen=True)
class Scalar:
    type: ScalarType
    enum: tuple[str, ...] = ()
    max_length: int | None = None


@dataclass(frozen=True)
class Struct:
    name: str  # the API type's name, for messages (``ExactDeviceRequest``)
    fields: Mapping[str, Schema]
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListOf:
    item: Schema
    max_items: int | None = None


@dataclass(frozen=True)
class MapOf:
    value: Schema
    what: str = "an object"


@dataclass(frozen=True)
class Free:
    """Anything (opaque parameters, status): not checked here."""

    what: str = field(default="")


Schema: TypeAlias = Scalar | Struct | ListOf | MapOf | Free

STRING = Scalar("string")
INTEGER = Scalar("integer")
BOOLEAN = Scalar("boolean")
QUANTITY = Scalar("quantity")


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def check(value: Any, schema: Schema, path: str) -> list[Issue]:
    """Every structural problem of ``value`` against ``schema``; ``null`` counts as absent."""
    if value is None:
        return []
    match schema:
        case Free():
            return []
        case Scalar():
            return _scalar(value, schema, path)
        case Struct():
            return _struct(value, schema, path)
        case ListOf(item=item, max_items=max_items):
            if not isinstance(value, list):
                return [Issue("schema", path, f"must be a list, got {type_name(value)}")]
            issues = []
            if max_items is not None and len(value) > max_items:
                issues.append(Issue("schema", path, f"too many items: {len(value)}, at most {max_items} allowed"))
            for i, element in enumerate(value):
                issues += check(element, item, f"{path}[{i}]")
            return issues
        case MapOf(value=item, what=what):
            if not isinstance(value, Mapping):
                return [Issue("schema", path, f"must be {what}, got {type_name(value)}")]
            return [issue for key, element in value.items() for issue in check(element, item, _join(path, str(key)))]


def _struct(value: Any, schema: Struct, path: str) -> list[Issue]:
    if not isinstance(value, Mapping):
        return [Issue("schema", path, f"must be an object ({schema.name}), got {type_name(value)}")]
    issues = []
    for key, element in value.items():
        child = _join(path, str(key))
        sub = schema.fields.get(str(key))
        if sub is None:
            issues.append(Issue("schema", child, unknown_field(str(key), schema)))
        else:
            issues += check(element, sub, child)
    for key in schema.required:
        if value.get(key) is None:
            issues.append(Issue("schema", _join(path, key), f"required field of {schema.name} is missing"))
    return issues


def unknown_field(key: str, schema: Struct) -> str:
    valid = sorted(schema.fields)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if not close:
        lowered = {v.lower(): v for v in valid}
        close = [lowered[key.lower()]] if key.lower() in lowered else []
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown field in {schema.name}; {hint}valid fields: {', '.join(valid)}"


def _scalar(value: Any, schema: Scalar, path: str) -> list[Issue]:
    match schema.type:
        case "string":
            ok = isinstance(value, str)
        case "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        case "boolean":
            ok = isinstance(value, bool)
        case "quantity":
            return _quantity(value, path)
    if not ok:
        return [Issue("schema", path, f"must be {_article(schema.type)}, got {type_name(value)}")]
    if schema.enum and value not in schema.enum:
        valid = ", ".join(f'"{e}"' for e in schema.enum)
        return [Issue("schema", path, f"unsupported value {type_name(value)}; supported values: {valid}")]
    if schema.max_length is not None and isinstance(value, str) and len(value) > schema.max_length:
        return [Issue("schema", path, f"too long: {len(value)} characters, at most {schema.max_length} allowed")]
    return []


def _quantity(value: Any, path: str) -> list[Issue]:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return [
            Issue("schema", path, f'must be a quantity (a string such as "10Gi" or a number), got {type_name(value)}')
        ]
    try:
        parse_quantity(str(value))
    except ValueError as e:
        return [Issue("schema", path, f'{value!r} is not a quantity ({e}); use a form such as "10Gi", "500m" or "4"')]
    return []


def _article(type_: str) -> str:
    return {"integer": "an integer", "string": "a string", "boolean": "a boolean (true or false)"}[type_]
