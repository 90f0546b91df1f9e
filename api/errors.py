"""Errors of the API layer (validation). ``dra_driver.errors`` re-exports ``ConfigError`` in its tree."""

from __future__ import annotations

import re

FIELD_MAX = 256  # a field path longer than this is cut in the middle (user-chosen keys can be 10 KiB)
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _readable_field(field: str) -> str:
    """``field`` as it may appear in a message: control characters escaped, at most ``FIELD_MAX`` characters."""
    field = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", field.lstrip("."))
    if len(field) <= FIELD_MAX:
        return field
    keep = FIELD_MAX // 2 - 2
    return f"{field[:keep]}…{field[-keep:]}"


class ConfigError(Exception):
    """Invalid input. ``field`` is the path of the offending field (e.g. ``nodes[0].gpus[1].mode``), with
    control characters escaped and cut to ``FIELD_MAX`` characters, since its keys may be anyone's."""

    def __init__(self, field: str, message: str) -> None:
        self.field = _readable_field(field)
        super().__init__(f"{self.field}: {message}" if self.field else message)
