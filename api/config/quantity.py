"""Kubernetes resource quantities ("10Gi", "1.5G", "500Mi", "1e9") read as whole bytes. Pure.

Follows ``k8s.io/apimachinery/pkg/api/resource`` syntax: a signed decimal number, then either a binary
suffix (Ki Mi Gi Ti Pi Ei), a decimal suffix (m k M G T P E) or a decimal exponent (e3, E-2). Memory
limits must come out as a whole, positive number of bytes.
"""

from __future__ import annotations

import re
from fractions import Fraction

from api.errors import ConfigError

_BINARY: dict[str, int] = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: dict[str, Fraction] = {
    "m": Fraction(1, 1000),
    "": Fraction(1),
    **{s: Fraction(10**e) for s, e in (("k", 3), ("M", 6), ("G", 9), ("T", 12), ("P", 15), ("E", 18))},
}
_SYNTAX = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?")
_EXAMPLES = '"10Gi", "512Mi", "1.5G" or "1073741824"'


def parse_bytes(value: object, field: str) -> int:
    """A quantity as a whole, positive number of bytes; errors name ``field`` and show valid forms."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)  # a bare number in YAML/JSON means bytes
    elif isinstance(value, str):
        text = value
    else:
        raise ConfigError(field, f"must be a quantity string such as {_EXAMPLES}, got {type(value).__name__}")
    m = _SYNTAX.fullmatch(text)
    if m is None:
        raise ConfigError(field, f"{text!r} is not a quantity; use a form such as {_EXAMPLES}")
    number, exponent, suffix = Fraction(m.group(1)), m.group(2), m.group(3) or ""
    if exponent:
        amount = number * Fraction(10) ** int(exponent[1:])
    else:
        amount = number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])
    if amount <= 0:
        raise ConfigError(field, f"{text!r} is not positive; a memory limit must be at least one byte")
    if amount.denominator != 1:
        raise ConfigError(field, f"{text!r} is not a whole number of bytes")
    return int(amount)


def format_bytes(value: int) -> str:
    """Bytes in the largest exact binary unit: 10737418240 -> "10Gi", 1000 -> "1000"."""
    for suffix, unit in sorted(_BINARY.items(), key=lambda item: -item[1]):
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)
