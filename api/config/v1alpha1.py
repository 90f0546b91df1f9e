"""The driver's opaque configuration, ``gpu.dra-driver.dev/v1alpha1``: types, strict decoding, validation. Pure.

Two kinds, written in ``DeviceClass.spec.config[].opaque.parameters`` or
``ResourceClaim.spec.devices.config[].opaque.parameters``::

    apiVersion: gpu.dra-driver.dev/v1alpha1
    kind: GpuConfig                  # whole GPUs, time-slice replicas, shared GPUs
    sharing:                         # optional; absent = no sharing settings
      strategy: TimeSlicing          # TimeSlicing | MPS
      timeSlicingConfig: {interval: Short}              # Default | Short | Medium | Long (default Default)

    apiVersion: gpu.dra-driver.dev/v1alpha1
    kind: MigDeviceConfig            # MIG devices: MPS only (a MIG device has no time-slice interval)
    sharing:
      strategy: MPS
      mpsConfig:
        defaultActiveThreadPercentage: 50                # 1..100
        defaultPinnedDeviceMemoryLimit: 10Gi             # quantity
        defaultPerDevicePinnedMemoryLimit: {"0": 5Gi}    # device index or UUID -> quantity

Decoding is strict (unknown fields, duplicate keys and wrong types are errors naming the field), then
normalises (fills defaults) and validates. ``decode_opaque`` is the one entry point for the admission
webhook, the manifest linter and the kubelet plugin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias, get_args

from api.config import strict
from api.config.quantity import format_bytes, parse_bytes
from api.errors import ConfigError
from api.names import API_VERSION

GPU_CONFIG = "GpuConfig"
MIG_DEVICE_CONFIG = "MigDeviceConfig"
KINDS = (GPU_CONFIG, MIG_DEVICE_CONFIG)

Interval = Literal["Default", "Short", "Medium", "Long"]
INTERVALS: tuple[str, ...] = get_args(Interval)
STRATEGIES = ("TimeSlicing", "MPS")
_DEVICE_KEY = re.compile(r"[0-9]+|(?:GPU|MIG)-[0-9A-Za-z/-]+")


@dataclass(frozen=True)
class TimeSlicing:
    """Round-robin time-slicing of a whole GPU with the given scheduling interval."""

    interval: Interval = "Default"


@dataclass(frozen=True)
class Mps:
    """CUDA MPS with optional per-client limits; ``None`` leaves the MPS daemon's default."""

    default_active_thread_percentage: int | None = None
    default_pinned_device_memory_limit: int | None = None  # bytes
    per_device_pinned_memory_limit: tuple[tuple[str, int], ...] = ()  # (device index or UUID, bytes), sorted


@dataclass(frozen=True)
class GpuConfig:
    """Configuration for whole GPUs, time-slice replicas and shared GPUs."""

    sharing: TimeSlicing | Mps | None = None
    kind: ClassVar[str] = GPU_CONFIG

    def to_parameters(self) -> dict[str, Any]:
        return _document(self.kind, self.sharing)


@dataclass(frozen=True)
class MigDeviceConfig:
    """Configuration for MIG devices. MPS only: time-slice intervals cannot be set on a MIG device."""

    sharing: Mps | None = None
    kind: ClassVar[str] = MIG_DEVICE_CONFIG

    def to_parameters(self) -> dict[str, Any]:
        return _document(self.kind, self.sharing)


DriverConfig: TypeAlias = GpuConfig | MigDeviceConfig


def decode_opaque(parameters: bytes | str | Mapping[str, Any], field_prefix: str = "parameters") -> DriverConfig:
    """Strictly decode, normalise and validate one ``opaque.parameters`` value.

    ``parameters`` is the raw JSON (bytes or text, duplicate keys rejected) or an already parsed mapping.
    Raises ``api.errors.ConfigError`` whose field starts with ``field_prefix``.
    """
    raw = strict.loads_json(parameters, field_prefix) if isinstance(parameters, bytes | str) else parameters
    obj = strict.want_mapping(raw, field_prefix, f"a {GpuConfig.__name__} or {MigDeviceConfig.__name__} object")
    api_version = strict.required(obj, "apiVersion", field_prefix, f"set apiVersion: {API_VERSION}")
    if api_version != API_VERSION:
        got = strict.type_name(api_version)
        raise ConfigError(f"{field_prefix}.apiVersion", f"unsupported apiVersion {got}; supported: {API_VERSION}")
    kind = strict.required(obj, "kind", field_prefix, f"set kind: one of {', '.join(KINDS)}")
    if kind not in KINDS:
        got = strict.type_name(kind)
        raise ConfigError(f"{field_prefix}.kind", f"unknown kind {got}; valid kinds: {', '.join(KINDS)}")
    strict.check_keys(obj, ("apiVersion", "kind", "sharing"), field_prefix)
    if kind == GPU_CONFIG:
        return GpuConfig(_gpu_sharing(obj.get("sharing"), f"{field_prefix}.sharing"))
    return MigDeviceConfig(_mig_sharing(obj.get("sharing"), f"{field_prefix}.sharing"))


def _strategy(raw: object, field: str, allowed: tuple[str, ...]) -> tuple[Mapping[str, Any], str | None]:
    if raw is None:
        return {}, None
    obj = strict.want_mapping(raw, field)
    strict.check_keys(obj, allowed, field)
    strategy = obj.get("strategy")
    if strategy is None:
        present = [k for k in allowed if k != "strategy" and obj.get(k) is not None]
        if present:
            raise ConfigError(f"{field}.strategy", f"required when {present[0]} is set; valid: {', '.join(STRATEGIES)}")
        return obj, None
    return obj, strict.want_choice(strategy, f"{field}.strategy", STRATEGIES, "strategy")


def _only_for(obj: Mapping[str, Any], key: str, strategy: str, wanted: str, field: str) -> None:
    if obj.get(key) is not None and strategy != wanted:
        raise ConfigError(
            f"{field}.{key}",
            f"only allowed with strategy {wanted} (strategy is {strategy}); remove it or change strategy",
        )


def _gpu_sharing(raw: object, field: str) -> TimeSlicing | Mps | None:
    obj, strategy = _strategy(raw, field, ("strategy", "timeSlicingConfig", "mpsConfig"))
    if strategy is None:
        return None
    _only_for(obj, "timeSlicingConfig", strategy, "TimeSlicing", field)
    _only_for(obj, "mpsConfig", strategy, "MPS", field)
    if strategy == "TimeSlicing":
        return _time_slicing(obj.get("timeSlicingConfig"), f"{field}.timeSlicingConfig")
    return _mps(obj.get("mpsConfig"), f"{field}.mpsConfig")


def _mig_sharing(raw: object, field: str) -> Mps | None:
    obj, strategy = _strategy(raw, field, ("strategy", "mpsConfig"))
    if strategy is None:
        return None
    if strategy == "TimeSlicing":
        raise ConfigError(
            f"{field}.strategy",
            "TimeSlicing is not supported on MIG devices (a MIG device has no time-slice interval to set); "
            "use strategy MPS, or remove sharing (clients of one MIG device are time-sliced by default)",
        )
    return _mps(obj.get("mpsConfig"), f"{field}.mpsConfig")


def _time_slicing(raw: object, field: str) -> TimeSlicing:
    if raw is None:
        return TimeSlicing()
    obj = strict.want_mapping(raw, field)
    strict.check_keys(obj, ("interval",), field)
    interval = obj.get("interval")
    if interval is None:
        return TimeSlicing()
    strict.want_choice(interval, f"{field}.interval", INTERVALS, "interval")
    return TimeSlicing(interval)


def _mps(raw: object, field: str) -> Mps:
    if raw is None:
        return Mps()
    keys = ("defaultActiveThreadPercentage", "defaultPinnedDeviceMemoryLimit", "defaultPerDevicePinnedMemoryLimit")
    obj = strict.want_mapping(raw, field)
    strict.check_keys(obj, keys, field)
    threads, pinned, per_device = (obj.get(k) for k in keys)
    return Mps(
        None if threads is None else strict.want_int(threads, f"{field}.{keys[0]}", 1, 100),
        None if pinned is None else parse_bytes(pinned, f"{field}.{keys[1]}"),
        () if per_device is None else _per_device(per_device, f"{field}.{keys[2]}"),
    )


def _per_device(raw: object, field: str) -> tuple[tuple[str, int], ...]:
    if isinstance(raw, Mapping):  # YAML reads {0: 5Gi} with an integer key; the API server would see "0"
        raw = {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v for k, v in raw.items()}
    obj = strict.want_mapping(raw, field, "an object mapping a device index or UUID to a quantity")
    out = []
    for key, value in obj.items():
        if not _DEVICE_KEY.fullmatch(key):
            raise ConfigError(f"{field}.{key}", "key must be a device index (e.g. 0) or UUID (GPU-…, MIG-…)")
        out.append((key, parse_bytes(value, f"{field}.{key}")))
    return tuple(sorted(out))


def _document(kind: str, sharing: TimeSlicing | Mps | None) -> dict[str, Any]:
    """The normalised parameters: what ``decode_opaque`` accepts back unchanged."""
    doc: dict[str, Any] = {"apiVersion": API_VERSION, "kind": kind}
    match sharing:
        case None:
            pass
        case TimeSlicing(interval):
            doc["sharing"] = {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": interval}}
        case Mps(threads, pinned, per_device):
            mps: dict[str, Any] = {}
            if threads is not None:
                mps["defaultActiveThreadPercentage"] = threads
            if pinned is not None:
                mps["defaultPinnedDeviceMemoryLimit"] = format_bytes(pinned)
            if per_device:
                mps["defaultPerDevicePinnedMemoryLimit"] = {k: format_bytes(v) for k, v in per_device}
            doc["sharing"] = {"strategy": "MPS", "mpsConfig": mps}
    return doc
