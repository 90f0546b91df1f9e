"""Kubernetes resource quantities ("10Gi", "1.5G", "500Mi", "1e9") read as whole bytes. Pure.

Follows ``k8s.io/apimachinery/pkg/api/resource`` syntax: a signed decimal number, then either a binary
suffix (Ki Mi Gi Ti Pi Ei), a decimal suffix (m k M G T P E) or a decimal exponent (e3, E-2). Memory
limits must come out as a whole number of bytes from 1 to 2⁶³-1 (the largest quantity Kubernetes keeps
in binary units, just under 8Ei).

Parsing is bounded whatever the input: the text is checked for length and matched by a strict regular
expression first, and the value's magnitude is worked out from its digits and exponent before any
arithmetic, so no power of ten beyond 10¹⁹ or 10⁻⁶⁴ is ever computed.
"""

from __future__ import annotations

import re
from fractions import Fraction

from api.config.strict import int_text, shown
from api.errors import ConfigError

MAX_BYTES = 2**63 - 1
MAX_TEXT = 64  # characters: 2⁶³-1 has 19 digits; anything this long is a mistake or an attack
_BINARY: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}  # powers of two
_DECIMAL: dict[str, int] = {"m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}  # powers of ten
_SYNTAX = re.compile(
    r"[+-]?(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?"
    r"(?:[eE](?P<exp>[+-]?[0-9]+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?"
)
_MAX_DIGITS = 19  # of the integer part: at most 2⁶³-1 < 10¹⁹ bytes
_EXAMPLES = '"10Gi", "512Mi", "1.5G" or "1073741824"'
RANGE = f"a quantity from 1 byte to 8Ei - 1 ({MAX_BYTES}), e.g. 10Gi"
_BELOW_ONE = Fraction(1, 2)  # stands for any value too small to be a whole number of bytes


def parse_bytes(value: object, field: str) -> int:
    """A quantity as a whole number of bytes in 1..2⁶³-1; errors name ``field`` and show valid forms."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 < value <= MAX_BYTES:  # a bare number in YAML/JSON means bytes
            raise ConfigError(field, f"{int_text(value)} is out of range: {RANGE}")
        return value
    if not isinstance(value, str):
        raise ConfigError(field, f"must be a quantity string such as {_EXAMPLES}, got {type(value).__name__}")
    m = _SYNTAX.fullmatch(value)  # linear: no nested repetition
    if m is None or not (m["int"] or m["frac"]):
        raise ConfigError(field, f"{shown(value)} is not a quantity; use a form such as {_EXAMPLES}")
    if len(value) > MAX_TEXT:
        raise ConfigError(field, f"{shown(value)} is out of range: {RANGE}")
    if value.startswith("-") or not (m["int"] + (m["frac"] or "")).strip("0"):
        raise ConfigError(field, f"{value!r} is not positive; a memory limit must be at least one byte")
    amount = _amount(m["int"], m["frac"] or "", m["exp"], m["suffix"] or "")
    if amount is None or amount > MAX_BYTES:
        raise ConfigError(field, f"{value!r} is out of range: {RANGE}")
    if amount.denominator != 1:
        raise ConfigError(field, f"{value!r} is not a whole number of bytes")
    return int(amount)


def _amount(integer: str, fraction: str, exponent: str | None, suffix: str) -> Fraction | None:
    """The exact value of a positive quantity; None when it is certainly above 2⁶³-1, ``_BELOW_ONE`` when it
    is certainly below one byte.

    The value is ``digits × 10^scale × 2^binary``; its integer part has ``len(digits) + scale`` decimal
    digits, which is compared with the bound before any power is computed.
    """
    digits = (integer + fraction).lstrip("0")
    scale = -len(fraction)
    stripped = digits.rstrip("0")  # trailing zeros go into the scale: "1000" is 1e3
    scale += len(digits) - len(stripped)
    binary = _BINARY.get(suffix, 0)
    if exponent is not None:
        if len(exponent.lstrip("+-").lstrip("0")) > 4:  # |e| >= 10000: far outside 1..2⁶³-1 either way
            return _BELOW_ONE if exponent.startswith("-") else None
        scale += int(exponent)
    elif suffix not in _BINARY:
        scale += _DECIMAL[suffix]
    if len(stripped) + scale > _MAX_DIGITS:
        return None
    if scale < -MAX_TEXT:  # only a negative exponent gets here: digits without trailing zeros, a fraction
        return _BELOW_ONE
    return Fraction(int(stripped) * 2**binary) * Fraction(10) ** scale


def format_bytes(value: int) -> str:
    """Bytes in the largest exact binary unit: 10737418240 -> "10Gi", 1000 -> "1000"."""
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        unit = 2**power
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)
