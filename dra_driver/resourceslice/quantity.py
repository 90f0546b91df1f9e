"""Kubernetes quantities in their canonical form, so that what we write reads back unchanged. Pure."""

from __future__ import annotations

_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
_DECIMAL = (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def binary(value: int) -> str:
    """Bytes in binary SI, largest exact unit: 42949672960 -> "40Gi", 5100273664 -> "4864Mi"."""
    for suffix, unit in _BINARY:
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


def decimal(value: int) -> str:
    """A count in decimal SI, largest exact unit: 98 -> "98", 1000 -> "1k"."""
    for suffix, unit in _DECIMAL:
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


_PARSE = {s: u for s, u in _BINARY + _DECIMAL} | {"": 1}


def parse(text: str) -> int:
    """Integer value of a quantity without fractions: "40Gi" -> 42949672960, "1k" -> 1000."""
    text = text.strip()
    for suffix in sorted(_PARSE, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return int(text[: -len(suffix)]) * _PARSE[suffix]
    return int(text)
