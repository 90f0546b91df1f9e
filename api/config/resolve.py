"""Which opaque configuration applies to an allocated device. Pure.

Precedence (``resource.k8s.io`` semantics): DeviceClass configs, then ResourceClaim configs, in list
order; the **last** entry that applies to a result wins. An entry applies to a result when its
``requests`` is empty, names the result's request (``main`` or ``main/sub``), or names the main
request of a subrequest result (as ``resourceclaim.ConfigForResult`` in k8s.io/dynamic-resource-allocation).
Entries for other drivers, and entries without ``opaque``, are ignored.

The kind must fit the device: ``MigDeviceConfig`` for ``mig`` devices, ``GpuConfig`` for ``gpu``,
``timeslice`` and ``shared`` devices. An entry that names the result's request exactly must fit, or
the claim fails with an error naming the entry. An entry that covers several requests (empty
``requests``, or a main request whose subrequests may pick different device types) configures the
devices it fits and is passed over for the others. With no entry, a device gets the default config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from api.config import strict
from api.config.v1alpha1 import DriverConfig, GpuConfig, MigDeviceConfig, decode_opaque
from api.errors import ConfigError

Source: TypeAlias = Literal["FromClass", "FromClaim"]
SOURCES: tuple[Source, ...] = ("FromClass", "FromClaim")
DeviceType: TypeAlias = Literal["gpu", "mig", "timeslice", "shared"]
ALLOCATION_FIELD = "status.allocation.devices.config"


@dataclass(frozen=True)
class ConfigEntry:
    """One decoded config entry of this driver and where it came from (``field``, for messages)."""

    source: Source
    requests: tuple[str, ...]
    config: DriverConfig
    field: str

    def applies_to(self, request: str) -> bool:
        return not self.requests or request in self.requests or request.split("/", 1)[0] in self.requests

    def names_exactly(self, request: str) -> bool:
        return request in self.requests


def default_config(device_type: DeviceType) -> DriverConfig:
    return MigDeviceConfig() if device_type == "mig" else GpuConfig()


def fits(config: DriverConfig, device_type: DeviceType) -> bool:
    return isinstance(config, MigDeviceConfig) == (device_type == "mig")


@dataclass(frozen=True)
class ResolvedConfigs:
    """This driver's config entries in precedence order (class entries first, then claim entries)."""

    entries: tuple[ConfigEntry, ...] = ()

    def entry_for(self, request: str, device_type: DeviceType) -> ConfigEntry | None:
        """The entry that configures a result of ``request`` on a device of ``device_type``, if any."""
        for entry in reversed(self.entries):
            if not entry.applies_to(request):
                continue
            if fits(entry.config, device_type):
                return entry
            if entry.names_exactly(request):
                wanted = "MigDeviceConfig" if device_type == "mig" else "GpuConfig"
                raise ConfigError(
                    f"{entry.field}.opaque.parameters.kind",
                    f"{entry.config.kind} cannot configure request {request!r}: it was allocated a {device_type} "
                    f"device, which takes a {wanted}",
                )
        return None

    def config_for(self, request: str, device_type: DeviceType) -> DriverConfig:
        """The effective config for a result: the winning entry's, or the default for the device type."""
        entry = self.entry_for(request, device_type)
        return entry.config if entry is not None else default_config(device_type)


def decode_configs(raw: object, driver: str, field: str, source: Source | None = None) -> tuple[ConfigEntry, ...]:
    """Decode a ``config[]`` list of API dicts, keeping this driver's opaque entries in order.

    ``source`` labels the entries of ``DeviceClass.spec.config`` (``FromClass``) or
    ``ResourceClaim.spec.devices.config`` (``FromClaim``); when ``None`` each entry must carry its own
    ``source``, as in ``status.allocation.devices.config``. Errors name ``field[i]...``.
    """
    items = strict.want_list(raw if raw is not None else [], field)
    decoded = (decode_entry(item, driver, f"{field}[{i}]", source) for i, item in enumerate(items))
    return tuple(entry for entry in decoded if entry is not None)


def decode_entry(item: object, driver: str, at: str, source: Source | None = None) -> ConfigEntry | None:
    """One ``config[]`` entry at path ``at``: this driver's, decoded; None for other drivers' and non-opaque ones."""
    obj = strict.want_mapping(item, at)
    if obj.get("opaque") is None:
        return None
    opaque = strict.want_mapping(obj["opaque"], f"{at}.opaque")
    if opaque.get("driver") != driver:
        return None
    src: Source
    if source is not None:
        src = source
    else:
        given = strict.want_choice(strict.required(obj, "source", at), f"{at}.source", SOURCES, "source")
        src = "FromClass" if given == "FromClass" else "FromClaim"
    requests = strict.want_str_list(obj["requests"], f"{at}.requests") if obj.get("requests") is not None else ()
    parameters = strict.required(opaque, "parameters", f"{at}.opaque", "an opaque config needs parameters")
    return ConfigEntry(src, requests, decode_opaque(parameters, f"{at}.opaque.parameters"), at)


def resolve_configs(
    class_configs: Sequence[Mapping[str, Any]] | None,
    claim_configs: Sequence[Mapping[str, Any]] | None,
    driver: str,
    *,
    class_field: str = "spec.config",
    claim_field: str = "spec.devices.config",
) -> ResolvedConfigs:
    """Resolve class and claim config lists given separately (class entries may carry ``requests``)."""
    return ResolvedConfigs(
        decode_configs(class_configs, driver, class_field, "FromClass")
        + decode_configs(claim_configs, driver, claim_field, "FromClaim")
    )


def resolve_allocation(
    configs: Sequence[Mapping[str, Any]] | None, driver: str, field: str = ALLOCATION_FIELD
) -> ResolvedConfigs:
    """Resolve a claim's ``status.allocation.devices.config``: class entries first, whatever the list order."""
    entries = decode_configs(configs, driver, field)
    return ResolvedConfigs(
        tuple(e for e in entries if e.source == "FromClass") + tuple(e for e in entries if e.source == "FromClaim")
    )
