"""This driver's opaque configs in a DeviceClass or claim, checked with the one shared validator
(``api.config.resolve.decode_entry`` → ``decode_opaque``). Used by the linter and the admission webhook. Pure.

Every entry is decoded on its own so that one bad entry does not hide the next; entries of other drivers
are ignored, however they look.
"""

from __future__ import annotations

from api.config import ConfigEntry
from api.config.resolve import decode_entry
from api.errors import ConfigError


def decode_each(raw: object, driver: str, field: str) -> list[ConfigEntry | ConfigError]:
    """Each of this driver's entries of ``raw`` (a ``config[]`` list at ``field``): decoded, or why not."""
    if not isinstance(raw, list):
        return []  # absent, or the wrong type: the API server's own validation says so
    out: list[ConfigEntry | ConfigError] = []
    for i, item in enumerate(raw):
        try:
            entry = decode_entry(item, driver, f"{field}[{i}]", "FromClaim")
        except ConfigError as e:
            out.append(e)
            continue
        if entry is not None:
            out.append(entry)
    return out


def config_errors(raw: object, driver: str, field: str) -> list[ConfigError]:
    """One error per entry of ``raw`` that this driver would refuse."""
    return [e for e in decode_each(raw, driver, field) if isinstance(e, ConfigError)]


def config_entries(raw: object, driver: str, field: str) -> list[ConfigEntry]:
    """This driver's entries of ``raw`` that decode."""
    return [e for e in decode_each(raw, driver, field) if isinstance(e, ConfigEntry)]
