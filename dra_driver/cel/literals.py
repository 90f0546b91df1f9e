"""String literals used as map keys in a CEL expression (``m["gpu.example.com"]``). Pure.

Kubernetes hands selectors ``device.attributes``/``device.capacity`` maps whose lookup of an unknown
domain yields an empty map instead of an error. cel-expr-python takes plain dicts, so the selector adds an
empty map for every domain the expression indexes with a literal (and for the driver's own domain): the
lookup then behaves the same, while ``"x" in device.attributes`` (a literal not used as an index) keeps
saying false. This scanner finds those literals: a string literal followed, after blanks, by ``]``.
"""

from __future__ import annotations

_QUOTES = ('"""', "'''", '"', "'")


def index_literals(expression: str) -> frozenset[str]:
    found: set[str] = set()
    i, n = 0, len(expression)
    while i < n:
        c = expression[i]
        if c == "/" and expression.startswith("//", i):
            newline = expression.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        if c in "\"'":
            raw = i > 0 and expression[i - 1] in "rR"
            value, i = _read_string(expression, i, raw)
            j = i
            while j < n and expression[j] in " \t\r\n":
                j += 1
            if value is not None and j < n and expression[j] == "]":
                found.add(value)
            continue
        i += 1
    return frozenset(found)


def _read_string(text: str, start: int, raw: bool) -> tuple[str | None, int]:
    """(value, index after the literal); value is None when it holds escapes (never a domain name)."""
    quote = next(q for q in _QUOTES if text.startswith(q, start))
    i = start + len(quote)
    escaped = False
    while i < len(text):
        if text[i] == "\\" and not raw:
            escaped = True
            i += 2
            continue
        if text.startswith(quote, i):
            value = text[start + len(quote) : i]
            return (None if escaped else value), i + len(quote)
        i += 1
    return None, len(text)
