"""Strict decoding helpers: JSON and YAML that refuse duplicate keys, and typed field access. Pure, no I/O.

Every failure is an ``api.errors.ConfigError`` whose ``field`` is the path of the offending value
(``parameters.sharing.mpsConfig``), so a user can find it in the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import yaml

from api.errors import ConfigError


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as the parser saw it: every key, duplicates included, in order."""


def _undup(value: Any, field: str) -> Any:
    if isinstance(value, _Pairs):
        out: dict[str, Any] = {}
        for key, item in value:
            if key in out:
                raise ConfigError(f"{field}.{key}", "duplicate key; each key may appear only once in an object")
            out[key] = _undup(item, f"{field}.{key}")
        return out
    if isinstance(value, list):
        return [_undup(item, f"{field}[{i}]") for i, item in enumerate(value)]
    return value


def loads_json(data: bytes | str, field: str) -> Any:
    """Parse JSON text; duplicate keys anywhere are an error naming the key's path below ``field``."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        parsed = json.loads(text, object_pairs_hook=_Pairs)
    except UnicodeDecodeError as e:
        raise ConfigError(field, f"is not UTF-8 text: {e}") from e
    except json.JSONDecodeError as e:
        raise ConfigError(field, f"is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from e
    return _undup(parsed, field)


def _check_yaml_node(node: yaml.Node, field: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{field}.{key}"
            if key in seen:
                mark = key_node.start_mark
                raise ConfigError(
                    path, f"duplicate key (line {mark.line + 1}, column {mark.column + 1}); each key may appear once"
                )
            seen.add(key)
            _check_yaml_node(value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_yaml_node(item, f"{field}[{i}]")


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a YAML stream (``---`` separated), refusing duplicate keys (PyYAML keeps the last)."""
    try:
        for i, node in enumerate(yaml.compose_all(text, Loader=yaml.SafeLoader)):
            if node is not None:
                _check_yaml_node(node, f"<document {i}>")
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as e:
        raise ConfigError("<yaml>", f"is not valid YAML: {e}") from e


def type_name(value: object) -> str:
    """How a JSON/YAML value reads to a user: ``string "50"``, ``integer 5``, ``list``, ``object``."""
    match value:
        case None:
            return "null"
        case bool():
            return f"boolean {str(value).lower()}"
        case int():
            return f"integer {value}"
        case float():
            return f"number {value}"
        case str():
            return f"string {json.dumps(value)}"
        case Mapping():
            return "object"
        case list() | tuple():
            return "list"
    return type(value).__name__


def want_mapping(value: object, field: str, what: str = "an object") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(field, f"must be {what}, got {type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{field}.{key}", f"keys must be strings, got {type_name(key)}")
    return value


def check_keys(obj: Mapping[str, Any], allowed: Collection[str], field: str) -> None:
    """Unknown keys are errors that name the key and list the valid ones."""
    for key in obj:
        if key not in allowed:
            raise ConfigError(f"{field}.{key}", f"unknown field; valid fields: {', '.join(sorted(allowed))}")


def want_str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(field, f"must be a string, got {type_name(value)}")
    return value


def want_int(value: object, field: str, minimum: int | None = None, maximum: int | None = None) -> int:
    bounds = ""
    if minimum is not None and maximum is not None:
        bounds = f" ({minimum}..{maximum})"
    elif minimum is not None:
        bounds = f" (>= {minimum})"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON writers may emit 50.0 for 50
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(field, f"must be an integer{bounds}, got {type_name(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(field, f"must be an integer{bounds}, got {value}")
    return value


def want_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be a boolean, got {type_name(value)}")
    return value


def want_list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ConfigError(field, f"must be a list, got {type_name(value)}")
    return list(value)


def want_str_list(value: object, field: str) -> tuple[str, ...]:
    return tuple(want_str(item, f"{field}[{i}]") for i, item in enumerate(want_list(value, field)))


def want_choice(value: object, field: str, choices: Collection[str], what: str) -> str:
    text = want_str(value, field)
    if text not in choices:
        raise ConfigError(field, f"unknown {what} {text!r}; valid: {', '.join(choices)}")
    return text


def required(obj: Mapping[str, Any], key: str, field: str, hint: str = "") -> Any:
    if key not in obj or obj[key] is None:
        raise ConfigError(f"{field}.{key}", f"required{'; ' + hint if hint else ''}")
    return obj[key]
