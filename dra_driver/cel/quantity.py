"""Kubernetes resource quantities (``resource.Quantity``) as exact values. Pure.

A quantity is held as an integer number of nano-units, which is exact for everything Kubernetes can
represent: ``ParseQuantity`` rounds anything finer than 10⁻⁹ up (away from zero). Parsing follows
``k8s.io/apimachinery/pkg/api/resource.ParseQuantity``: the same scanner, the same suffixes (``n u m k M G T
P E``, ``Ki``…``Ei``, ``e<exp>`` with an exponent that fits in int32), rounding up to nano precision and
capping binary-SI values at 2⁶³-1.

Bounded, unlike Kubernetes (whose decimal type holds any int32 exponent): a quantity is at most
``MAX_TEXT`` characters and below 10^``MAX_DIGITS`` in magnitude, else ``ValueError``; values too small
for a nano-unit are rounded up without computing the power of ten. So parsing never does arithmetic on
numbers of more than about 2,000 digits, however the text reads (``"1e999999999"`` is refused at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field

NANO = 10**9
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)

_FORMAT_REGEX = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT = f"quantities must match the regular expression '{_FORMAT_REGEX}'"
ERR_SUFFIX = "unable to parse quantity's suffix"
ERR_NUMERIC = "unable to parse numeric part of quantity"
MAX_TEXT = 1000  # characters; a CEL selector holds at most 10 KiB
MAX_DIGITS = 1000  # digits of the integer part: |value| < 10^1000
ERR_TOO_LONG = f"quantity too long: at most {MAX_TEXT} characters"
ERR_TOO_LARGE = f"quantity too large: its magnitude must be below 1e{MAX_DIGITS}"
_INT32 = 2**31

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")


@dataclass(frozen=True)
class Quantity:
    """An exact quantity: ``nanos`` is the value times 10⁹. Equality and order are by value."""

    nanos: int
    text: str | None = field(default=None, compare=False)  # the string it was parsed from, for display

    @staticmethod
    def from_int(value: int) -> Quantity:
        return Quantity(value * NANO)

    def compare(self, other: Quantity) -> int:
        return (self.nanos > other.nanos) - (self.nanos < other.nanos)

    def __lt__(self, other: Quantity) -> bool:
        return self.nanos < other.nanos

    def __le__(self, other: Quantity) -> bool:
        return self.nanos <= other.nanos

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos + other.nanos)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos - other.nanos)

    def sign(self) -> int:
        return (self.nanos > 0) - (self.nanos < 0)

    def is_integer(self) -> bool:
        """True when ``as_integer`` succeeds: a whole number that fits in int64 (``Quantity.AsInt64``)."""
        return self.nanos % NANO == 0 and _INT64_MIN <= self.nanos // NANO <= _INT64_MAX

    def as_integer(self) -> int:
        if not self.is_integer():
            raise ValueError("cannot convert value to integer")
        return self.nanos // NANO

    def as_approximate_float(self) -> float:
        try:
            return self.nanos / NANO
        except OverflowError:
            return float("inf") if self.nanos > 0 else float("-inf")

    def __str__(self) -> str:
        return self.text if self.text is not None else format_quantity(self.nanos)


def parse_quantity(text: str) -> Quantity:
    """``"40Gi"`` → Quantity; raises ValueError with Kubernetes' message for malformed input, and with
    ``ERR_TOO_LONG`` / ``ERR_TOO_LARGE`` beyond this implementation's bounds."""
    if not text:
        raise ValueError(ERR_FORMAT)
    if len(text) > MAX_TEXT:
        raise ValueError(ERR_TOO_LONG)
    positive, num, denom, suffix = _scan(text)
    base, exponent = _interpret_suffix(suffix)
    nanos = _binary_nanos(num, denom, exponent) if base == 2 else _decimal_nanos(num + denom, exponent - len(denom))
    return Quantity(nanos if positive else -nanos, text)


def _decimal_nanos(digits: str, scale: int) -> int:
    """digits × 10^scale in nano-units, rounded up; the magnitude is checked before any power is taken."""
    digits = digits.lstrip("0")
    if not digits:
        return 0
    shift = scale + 9
    if len(digits) + shift > MAX_DIGITS + 9:
        raise ValueError(ERR_TOO_LARGE)
    if shift >= 0:
        factor: int = 10**shift
        return int(digits) * factor
    keep = len(digits) + shift  # digits left of the nano point
    if keep <= 0:
        return 1  # a positive value under 1n
    return int(digits[:keep]) + (1 if digits[keep:].strip("0") else 0)


def _binary_nanos(num: str, denom: str, power: int) -> int:
    """(num.denom) × 2^power in nano-units, rounded up and capped at 2⁶³-1 units."""
    if len(num.lstrip("0")) > 19:  # at least 10¹⁹ > 2⁶³-1 before the suffix: capped
        return _INT64_MAX * NANO
    numerator = int((num + denom) or "0") << power  # at most MAX_TEXT digits of text
    shift = 9 - len(denom)
    factor: int = 10 ** abs(shift)
    nanos = numerator * factor if shift >= 0 else -(-numerator // factor)
    return min(nanos, _INT64_MAX * NANO)


def _scan(text: str) -> tuple[bool, str, str, str]:
    """Port of ``parseQuantityString``: (positive, numerator digits, fraction digits, suffix)."""
    pos, end, positive = 0, len(text), True
    if text[0] in "+-":
        positive = text[0] == "+"
        pos = 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    num = text[start:pos] or "0"
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        denom = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise ValueError(ERR_FORMAT)
    return positive, num, denom, text[suffix_start:]


def _interpret_suffix(suffix: str) -> tuple[int, int]:
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix]
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix]
    if len(suffix) > 1 and suffix[0] in "eE":  # strconv.ParseInt(s, 10, 32); int() of ≤ MAX_TEXT digits
        try:
            exponent = int(suffix[1:])
        except ValueError:
            pass
        else:
            if -_INT32 <= exponent < _INT32:
                return 10, exponent
    raise ValueError(ERR_SUFFIX)


_DISPLAY_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def format_quantity(nanos: int) -> str:
    """A readable, exact rendering for values computed here (not Kubernetes' canonical form)."""
    if nanos % NANO == 0:
        value = nanos // NANO
        for suffix, unit in _DISPLAY_BINARY:
            if value and value % unit == 0:
                return f"{value // unit}{suffix}"
        return str(value)
    for suffix, unit in (("m", 10**6), ("u", 10**3)):
        if nanos % unit == 0:
            return f"{nanos // unit}{suffix}"
    return f"{nanos}n"
