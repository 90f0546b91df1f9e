"""Kubernetes' CEL libraries that DRA selectors may use, declared for cel-expr-python. Pure.

- quantity (``k8s.io/apiserver/pkg/cel/library/quantity.go``): ``quantity(s)``, ``isQuantity(s)``,
  ``sign(q)`` (a global function upstream, so ``q.sign()`` does not compile there either), and the members
  ``compareTo isGreaterThan isLessThan add sub asInteger isInteger asApproximateFloat``;
- semver (``semverlib.go``, version 1): ``semver(s[, normalize])``, ``isSemver(s[, normalize])`` and the
  members ``compareTo isGreaterThan isLessThan major minor patch``;
- regex (``regex.go``): ``s.find(re)``, ``s.findAll(re[, n])`` (Python ``re`` stands in for RE2);
- lists (``lists.go``): ``l.isSorted()``, ``l.sum()``, ``l.min()``, ``l.max()``. Left out: ``indexOf`` and
  ``lastIndexOf`` (their names clash with the strings extension here) and ``includes`` (cel-expr-python
  cannot bind a Python implementation to ``dyn`` parameters, which it needs).

cel-cpp registers runtime overloads by argument *kind*, and both object types are the "struct" kind, so
``compareTo``/``isGreaterThan``/``isLessThan`` declare a Quantity and a Semver overload for the type checker
but bind one implementation that dispatches on the message type (mixed types fail like "no such overload").
A Python exception raised here becomes a CEL error value, which ``||``/``&&`` may absorb as usual.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from cel_expr_python import cel

from dra_driver.cel.protos import (
    QUANTITY_TYPE,
    SEMVER_TYPE,
    quantity_message,
    quantity_of,
    semver_message,
    semver_of,
    type_name,
)
from dra_driver.cel.quantity import Quantity, parse_quantity
from dra_driver.cel.semver import Semver, parse_semver

QUANTITY = cel.Type(QUANTITY_TYPE)
SEMVER = cel.Type(SEMVER_TYPE)
STRING, BOOL, INT, DOUBLE, DYN = cel.Type.STRING, cel.Type.BOOL, cel.Type.INT, cel.Type.DOUBLE, cel.Type.DYN
LIST = cel.Type.List(DYN)


def _compare(a: Any, b: Any) -> int:
    kind = type_name(a)
    if kind != type_name(b):
        raise TypeError(f"no such overload: {kind} compared with {type_name(b)}")
    if kind == QUANTITY_TYPE:
        return quantity_of(a).compare(quantity_of(b))
    return semver_of(a).compare(semver_of(b))


@lru_cache(maxsize=1024)
def _parsed_quantity(text: str) -> Quantity:
    return parse_quantity(text)


def _quantity(text: str) -> Any:
    return quantity_message(_parsed_quantity(text))


def _is_quantity(text: str) -> bool:
    try:
        parse_quantity(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1024)
def _parsed_semver(text: str, normalize: bool) -> Semver:
    return parse_semver(text, normalize)


def _semver(text: str, normalize: bool = False) -> Any:
    return semver_message(_parsed_semver(text, normalize))


def _is_semver(text: str, normalize: bool = False) -> bool:
    try:
        parse_semver(text, normalize)
    except ValueError:
        return False
    return True


def _add(a: Any, b: Any) -> Any:
    other = Quantity.from_int(b) if isinstance(b, int) else quantity_of(b)
    return quantity_message(quantity_of(a) + other)


def _sub(a: Any, b: Any) -> Any:
    other = Quantity.from_int(b) if isinstance(b, int) else quantity_of(b)
    return quantity_message(quantity_of(a) - other)


def _find(text: str, pattern: str) -> str:
    match = re.search(pattern, text)
    return match.group(0) if match else ""


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    found = [m.group(0) for m in re.finditer(pattern, text)]
    return found if limit < 0 else found[:limit]


def _extreme(name: str, pick: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
    def run(items: list[Any]) -> Any:
        if not items:
            raise ValueError(f"{name} called on empty list")
        return pick(items)

    return run


def _overload(
    name: str, result: Any, params: Sequence[Any], impl: Callable[..., Any] | None, member: bool = False
) -> Any:
    if impl is None:  # declared for the type checker only; another overload of the same kinds runs it
        return cel.Overload(name, result, list(params), is_member=member)
    return cel.Overload(name, result, list(params), is_member=member, impl=impl)


def _function(name: str, *overloads: Any) -> Any:
    return cel.FunctionDecl(name, list(overloads))


def declarations() -> list[Any]:
    """The ``cel.FunctionDecl`` list for ``cel.NewEnv(functions=...)``."""
    q, s = QUANTITY, SEMVER
    return [
        _function("quantity", _overload("string_to_quantity", q, [STRING], _quantity)),
        _function("isQuantity", _overload("is_quantity_string", BOOL, [STRING], _is_quantity)),
        _function("sign", _overload("quantity_sign", INT, [q], lambda a: quantity_of(a).sign())),
        _function(
            "compareTo",
            _overload("quantity_compare_to", INT, [q, q], _compare, member=True),
            _overload("semver_compare_to", INT, [s, s], None, member=True),
        ),
        _function(
            "isGreaterThan",
            _overload("quantity_is_greater_than", BOOL, [q, q], lambda a, b: _compare(a, b) == 1, member=True),
            _overload("semver_is_greater_than", BOOL, [s, s], None, member=True),
        ),
        _function(
            "isLessThan",
            _overload("quantity_is_less_than", BOOL, [q, q], lambda a, b: _compare(a, b) == -1, member=True),
            _overload("semver_is_less_than", BOOL, [s, s], None, member=True),
        ),
        _function(
            "asApproximateFloat",
            _overload("quantity_get_float", DOUBLE, [q], lambda a: quantity_of(a).as_approximate_float(), True),
        ),
        _function("asInteger", _overload("quantity_get_int", INT, [q], lambda a: quantity_of(a).as_integer(), True)),
        _function(
            "isInteger", _overload("quantity_is_integer", BOOL, [q], lambda a: quantity_of(a).is_integer(), True)
        ),
        _function(
            "add",
            _overload("quantity_add", q, [q, q], _add, member=True),
            _overload("quantity_add_int", q, [q, INT], _add, member=True),
        ),
        _function(
            "sub",
            _overload("quantity_sub", q, [q, q], _sub, member=True),
            _overload("quantity_sub_int", q, [q, INT], _sub, member=True),
        ),
        _function(
            "semver",
            _overload("string_to_semver", s, [STRING], _semver),
            _overload("string_bool_to_semver", s, [STRING, BOOL], _semver),
        ),
        _function(
            "isSemver",
            _overload("is_semver_string", BOOL, [STRING], _is_semver),
            _overload("is_semver_string_bool", BOOL, [STRING, BOOL], _is_semver),
        ),
        _function("major", _overload("semver_major", INT, [s], lambda a: semver_of(a).major, True)),
        _function("minor", _overload("semver_minor", INT, [s], lambda a: semver_of(a).minor, True)),
        _function("patch", _overload("semver_patch", INT, [s], lambda a: semver_of(a).patch, True)),
        _function("find", _overload("string_find_string", STRING, [STRING, STRING], _find, member=True)),
        _function("isSorted", _overload("list_is_sorted", BOOL, [LIST], lambda xs: list(xs) == sorted(xs), True)),
        _function("sum", _overload("list_sum", DYN, [LIST], lambda xs: sum(xs, 0), member=True)),
        _function("min", _overload("list_min", DYN, [LIST], _extreme("min", min), member=True)),
        _function("max", _overload("list_max", DYN, [LIST], _extreme("max", max), member=True)),
        _function(
            "findAll",
            _overload("string_find_all_string", cel.Type.List(STRING), [STRING, STRING], _find_all, member=True),
            _overload(
                "string_find_all_string_int", cel.Type.List(STRING), [STRING, STRING, INT], _find_all, member=True
            ),
        ),
    ]
