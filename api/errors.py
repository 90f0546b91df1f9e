"""Errors of the API layer (validation). ``dra_driver.errors`` re-exports ``ConfigError`` in its tree."""

from __future__ import annotations


class ConfigError(Exception):
    """Invalid input. ``field`` is the path of the offending field (e.g. ``nodes[0].gpus[1].mode``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field.lstrip('.')}: {message}" if field else message)
        self.field = field.lstrip(".")
