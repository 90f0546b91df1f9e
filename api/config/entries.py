"""This driver's opaque configs in a DeviceClass or claim, checked with the one shared validator
(``api.config.decode_configs`` → ``decode_opaque``). Used by the linter and the admission webhook. Pure.

Every entry is decoded on its own so that one bad entry does not hide the next; entries of other drivers
are ignored, however they look.
"""

from __future__ import annotations

from api.config import ConfigEntry, decode_configs
from api.errors import ConfigError


def decode_each(raw: object, driver: str, field: str) -> list[ConfigEntry | ConfigError]:
    """Each of this driver's entries of ``raw`` (a ``config[]`` list at ``field``): decoded, or why not."""
    if not isinstance(raw, list):
        return []  # absent, or the wrong type: the API server's own validation says so
    out: list[ConfigEntry | ConfigError] = []
    for i, item in enumerate(raw):
        # Entries before i are replaced by empty ones (skipped by decode_configs) so that paths name field[i].
        try:
            out += decode_configs([*([{}] * i), item], driver, field, "FromClaim")
        except ConfigError as e:
            out.append(e)
    return out


def config_errors(raw: object, driver: str, field: str) -> list[ConfigError]:
    """One error per entry of ``raw`` that this driver would refuse."""
    return [e for e in decode_each(raw, driver, field) if isinstance(e, ConfigError)]


def config_entries(raw: object, driver: str, field: str) -> list[ConfigEntry]:
    """This driver's entries of ``raw`` that decode."""
    return [e for e in decode_each(raw, driver, field) if isinstance(e, ConfigEntry)]
