"""CDI naming rules: kinds (``vendor/class``), device names, qualified device IDs, spec file names. Pure.

The rules are those the runtimes' loader enforces (``tags.cncf.io/container-device-interface/pkg/parser``):
vendor and class start with a letter, end with a letter or digit, and hold letters, digits, ``_ - .``
in between; a device name starts and ends with a letter or digit and holds letters, digits,
``_ - . :`` in between (a leading digit needs spec 0.5.0). SPEC.md adds length limits: class ≤ 63,
vendor ≤ 253 characters.
"""

from __future__ import annotations

import functools
import re

from dra_driver.errors import ConfigError

_VENDOR_OR_CLASS = re.compile(r"[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?")
_DEVICE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?")
MAX_VENDOR = 253
MAX_CLASS = 63


def kind_problem(kind: str) -> str | None:
    """Why ``kind`` is not a valid ``vendor/class``, or None."""
    vendor, sep, cls = kind.partition("/")
    if not sep or not vendor or not cls:
        return f"kind {kind!r} must be vendor/class, e.g. k8s.gpu.example.com/gpu"
    if not _VENDOR_OR_CLASS.fullmatch(vendor) or len(vendor) > MAX_VENDOR:
        return (
            f"vendor {vendor!r} must start with a letter, end with a letter or digit, hold only letters, digits, "
            f"'_', '-', '.', and be at most {MAX_VENDOR} characters"
        )
    if not _VENDOR_OR_CLASS.fullmatch(cls) or len(cls) > MAX_CLASS:
        return (
            f"class {cls!r} must start with a letter, end with a letter or digit, hold only letters, digits, "
            f"'_', '-', '.', and be at most {MAX_CLASS} characters"
        )
    return None


def device_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid CDI device name, or None."""
    if not _DEVICE_NAME.fullmatch(name):
        return (
            f"device name {name!r} must start and end with a letter or digit and hold only letters, digits, "
            "'_', '-', '.', ':'"
        )
    return None


def split_kind(kind: str) -> tuple[str, str]:
    """``"vendor/class"`` -> ``("vendor", "class")``; raises ConfigError for an invalid kind."""
    problem = kind_problem(kind)
    if problem:
        raise ConfigError("kind", problem)
    vendor, _, cls = kind.partition("/")
    return vendor, cls


def qualified_id(kind: str, name: str) -> str:
    """The fully-qualified CDI device ID a runtime resolves: ``vendor/class=name``."""
    split_kind(kind)
    problem = device_name_problem(name)
    if problem:
        raise ConfigError("name", problem)
    return f"{kind}={name}"


def parse_qualified_id(device_id: str) -> tuple[str, str]:
    """``"vendor/class=name"`` -> ``("vendor/class", "name")``; raises ConfigError when not qualified or invalid."""
    kind, sep, name = device_id.partition("=")
    if not sep:
        raise ConfigError("deviceID", f"CDI device ID {device_id!r} is not qualified: expected vendor/class=name")
    qualified_id(kind, name)
    return kind, name


def claim_device_name(claim_uid: str, device: str) -> str:
    """A CDI device name unique to one claim: ``<claimUID>-<device>``.

    Runtimes cache specs, so a name is never reused across claims. Claim UIDs may start with a digit,
    which needs CDI 0.5.0 (``minimum_version`` accounts for it).
    """
    name = f"{claim_uid}-{device}"
    problem = device_name_problem(name)
    if problem:
        raise ConfigError("name", problem)
    return name


@functools.lru_cache(maxsize=64)  # a plugin asks for its one kind on every claim
def spec_file_prefix(kind: str) -> str:
    """What every transient spec file of ``kind`` starts with: ``<vendor>-<class>_``."""
    vendor, cls = split_kind(kind)
    return f"{vendor}-{cls}_"


def spec_file_name(kind: str, claim_uid: str) -> str:
    """The transient spec file for one claim: ``<vendor>-<class>_<claimUID>.json`` (CDI's own convention)."""
    return f"{spec_file_prefix(kind)}{claim_uid.replace('/', '_')}.json"
