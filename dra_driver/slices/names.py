"""Device names back to what they denote: the closed set of device kinds the driver publishes. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import assert_never

from api.config.resolve import DeviceType
from dra_driver.errors import ConfigError


@dataclass(frozen=True)
class WholeRef:
    minor: int


@dataclass(frozen=True)
class MigRef:
    minor: int
    profile_label: str  # profile with '.'/'+' as '-': "1g-5gb-me"
    start: int


@dataclass(frozen=True)
class TimeSliceRef:
    minor: int
    replica: int


@dataclass(frozen=True)
class SharedRef:
    minor: int


DeviceRef = WholeRef | MigRef | TimeSliceRef | SharedRef


def device_type(ref: DeviceRef) -> DeviceType:
    """The kind of device a name denotes (a whole GPU in MIG mode is still a ``gpu``)."""
    match ref:
        case WholeRef():
            return "gpu"
        case MigRef():
            return "mig"
        case TimeSliceRef():
            return "timeslice"
        case SharedRef():
            return "shared"
        case _:
            assert_never(ref)


_PATTERNS: tuple[tuple[re.Pattern[str], type], ...] = (
    (re.compile(r"gpu-(\d+)"), WholeRef),
    (re.compile(r"gpu-(\d+)-mig-([0-9a-z-]+)-(\d+)"), MigRef),
    (re.compile(r"gpu-(\d+)-ts-(\d+)"), TimeSliceRef),
    (re.compile(r"gpu-(\d+)-shared"), SharedRef),
)


def parse_device_name(name: str) -> DeviceRef:
    for pattern, kind in _PATTERNS:
        m = pattern.fullmatch(name)
        if m:
            args = [int(g) if g.isdigit() else g for g in m.groups()]
            ref: DeviceRef = kind(*args)
            return ref
    raise ConfigError("device", f"{name!r} is not a device name this driver publishes")
