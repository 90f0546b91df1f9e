"""Does a config's kind fit the devices it would configure? ``MigDeviceConfig`` configures MIG devices,
``GpuConfig`` every other type; an entry that names a request exactly and fits none of the devices the
request can get fails the claim when a pod using it starts (docs/opaque-config.md, precedence rule 5).
Judged on the devices of an environment (a simulated machine's or a cluster's). Pure.

A DeviceClass's entries are checked against the devices the class selects: the scheduler copies them into
the allocation naming the requests that used the class, so they name those requests exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast, get_args

from api.config import ConfigEntry, DeviceType, MigDeviceConfig, ResolvedConfigs
from api.config.entries import config_entries
from api.errors import ConfigError
from cli.lint.feasibility import Evaluator, class_probe
from cli.lint.findings import Issue
from cli.lint.objects import Manifest

DEVICE_TYPES: tuple[str, ...] = get_args(DeviceType)


def _wanted(types: set[str]) -> str:
    return "MigDeviceConfig" if types == {"mig"} else "GpuConfig"


def _misfit(entry: ConfigEntry, types: set[str]) -> bool:
    """True when some device matches and the entry fits none of them."""
    return bool(types) and all(isinstance(entry.config, MigDeviceConfig) != (t == "mig") for t in types)


def _message(entry: ConfigEntry, types: set[str], scope: str, request: str | None) -> str:
    listed = ", ".join(sorted(types))
    if request is None:
        return (
            f"{entry.config.kind} cannot configure the devices this class selects: on {scope} they are {listed} "
            f"devices, which take a {_wanted(types)}; every claim using the class would fail when its pod starts"
        )
    return (
        f"{entry.config.kind} cannot configure request {request!r}: the devices of {scope} it can get are {listed} "
        f"devices, which take a {_wanted(types)}; the claim would fail when a pod using it starts"
    )


def fit_issues(m: Manifest, evaluator: Evaluator, driver: str, skip: Sequence[str]) -> list[Issue]:
    entries = config_entries(m.configs, driver, m.config_path)
    if not entries or skip:
        return []
    scope = evaluator.environment.description
    if m.kind == "DeviceClass":
        types = evaluator.matching_types(class_probe(m.name), "probe")
        return [
            Issue(
                "config",
                f"{e.field}.opaque.parameters.kind",
                _message(e, types, scope, None),
            )
            for e in entries
            if _misfit(e, types)
        ]
    resolved = ResolvedConfigs(tuple(entries))
    issues = []
    for request in m.requests:
        for alt in request.alternatives:
            if not any(e.names_exactly(alt.name) for e in entries):
                continue  # entries that cover several requests configure the devices they fit, never fail
            types = evaluator.matching_types(m.claim_v1(only=request), alt.name)
            failing = [_failure(resolved, alt.name, t) for t in sorted(types)]
            if types and all(failing):
                entry = failing[0]
                assert entry is not None
                field = f"{entry.field}.opaque.parameters.kind"
                issues.append(Issue("config", field, _message(entry, types, scope, alt.name)))
    return issues


def _failure(resolved: ResolvedConfigs, request: str, device_type: str) -> ConfigEntry | None:
    """The entry that fails ``request`` on a device of ``device_type`` (the shared resolution rules), if any."""
    if device_type not in DEVICE_TYPES:
        return None
    try:
        resolved.entry_for(request, cast(DeviceType, device_type))
    except ConfigError as e:
        return next(entry for entry in resolved.entries if e.field.startswith(f"{entry.field}."))
    return None
