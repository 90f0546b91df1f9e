"""How an operator chooses each GPU's mode, and the modes themselves. Pure data + validation.

A ``PartitioningConfig`` (YAML file or ConfigMap key ``config.yaml``)::

    apiVersion: gpu.dra-driver.dev/v1alpha1
    kind: PartitioningConfig
    defaultMode: whole                 # whole | mig | timeslice:N | shared
    nodes:
    - selector: {gpu.example/pool: training}   # node labels that must all match; empty/absent = every node
      mode: mig                        # for every GPU of matching nodes
      gpus:                            # per-GPU overrides; each names exactly one of index, uuid, productName
      - index: 0
        mode: timeslice:4

Later entries win over earlier ones; per-GPU overrides win over the entry's mode.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.config import strict
from api.errors import ConfigError
from api.names import API_VERSION

KIND = "PartitioningConfig"
MAX_TIMESLICE_REPLICAS = 64
VALID_MODES = "whole, mig, timeslice:N (N = 2..64) or shared"


@dataclass(frozen=True)
class Whole:
    def __str__(self) -> str:
        return "whole"


@dataclass(frozen=True)
class Mig:
    def __str__(self) -> str:
        return "mig"


@dataclass(frozen=True)
class TimeSlice:
    replicas: int

    def __str__(self) -> str:
        return f"timeslice:{self.replicas}"


@dataclass(frozen=True)
class Shared:
    def __str__(self) -> str:
        return "shared"


GpuMode = Whole | Mig | TimeSlice | Shared


def parse_mode(text: object, field: str) -> GpuMode:
    if not isinstance(text, str):
        raise ConfigError(field, f"must be a string: {VALID_MODES}")
    if text == "whole":
        return Whole()
    if text == "mig":
        return Mig()
    if text == "shared":
        return Shared()
    m = re.fullmatch(r"timeslice:([0-9]+)", text)
    if m:
        digits = m.group(1).lstrip("0") or "0"
        if len(digits) <= 3 and 2 <= int(digits) <= MAX_TIMESLICE_REPLICAS:
            return TimeSlice(int(digits))
        raise ConfigError(
            field, f"timeslice replicas must be 2..{MAX_TIMESLICE_REPLICAS}, got {strict.shown(m.group(1))}"
        )
    raise ConfigError(field, f"unknown mode {strict.shown(text)}; valid modes: {VALID_MODES}")


@dataclass(frozen=True)
class GpuOverride:
    key: str  # "index" | "uuid" | "productName"
    value: str | int
    mode: GpuMode

    def matches(self, index: int, uuid: str, product_name: str) -> bool:
        return {"index": index, "uuid": uuid, "productName": product_name}[self.key] == self.value


@dataclass(frozen=True)
class NodeRule:
    selector: tuple[tuple[str, str], ...]
    mode: GpuMode | None
    gpus: tuple[GpuOverride, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.selector)


@dataclass(frozen=True)
class PartitioningConfig:
    default: GpuMode = Whole()
    rules: tuple[NodeRule, ...] = ()

    def mode_for(self, labels: Mapping[str, str], index: int, uuid: str, product_name: str) -> GpuMode:
        mode = self.default
        for rule in self.rules:
            if not rule.matches(labels):
                continue
            mode = rule.mode or mode
            for override in rule.gpus:
                if override.matches(index, uuid, product_name):
                    mode = override.mode
        return mode


def _check_keys(obj: Mapping[str, Any], allowed: set[str], field: str) -> None:
    for key in obj:
        if key not in allowed:
            raise ConfigError(f"{field}.{key}", f"unknown field; valid fields: {', '.join(sorted(allowed))}")


def _override(raw: Any, field: str) -> GpuOverride:
    if not isinstance(raw, dict):
        raise ConfigError(field, "must be a mapping with one of index, uuid, productName and a mode")
    _check_keys(raw, {"index", "uuid", "productName", "mode"}, field)
    keys = [k for k in ("index", "uuid", "productName") if k in raw]
    if len(keys) != 1:
        raise ConfigError(field, "must name exactly one of index, uuid, productName")
    key = keys[0]
    value = raw[key]
    if key == "index" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ConfigError(f"{field}.index", "must be a non-negative integer")
    if key != "index" and not isinstance(value, str):
        raise ConfigError(f"{field}.{key}", "must be a string")
    if "mode" not in raw:
        raise ConfigError(f"{field}.mode", f"required: {VALID_MODES}")
    return GpuOverride(key, value, parse_mode(raw["mode"], f"{field}.mode"))


def _rule(raw: Any, field: str) -> NodeRule:
    if not isinstance(raw, dict):
        raise ConfigError(field, "must be a mapping with selector, mode and/or gpus")
    _check_keys(raw, {"selector", "mode", "gpus"}, field)
    selector = raw.get("selector") or {}
    if not isinstance(selector, dict) or not all(isinstance(v, str) for v in selector.values()):
        raise ConfigError(f"{field}.selector", "must map node label keys to string values")
    gpus = raw.get("gpus") or []
    if not isinstance(gpus, list):
        raise ConfigError(f"{field}.gpus", "must be a list")
    mode = parse_mode(raw["mode"], f"{field}.mode") if "mode" in raw else None
    return NodeRule(
        tuple(sorted(selector.items())), mode, tuple(_override(g, f"{field}.gpus[{i}]") for i, g in enumerate(gpus))
    )


def load_config(text: str) -> PartitioningConfig:
    """A PartitioningConfig from YAML text (one document; empty text = the default), read within the
    limits of ``api.config.strict`` (3 MiB, 64 levels, bounded aliases); errors are ConfigErrors."""
    documents = strict.load_yaml_documents(text)
    if len(documents) > 1:
        raise ConfigError("<yaml>", f"holds {len(documents)} documents; a PartitioningConfig is one")
    return parse_config(documents[0] if documents else None)


def parse_config(raw: Any) -> PartitioningConfig:
    """Strictly decode and validate a PartitioningConfig document; errors name the field."""
    if raw is None:
        return PartitioningConfig()
    if not isinstance(raw, dict):
        raise ConfigError("<root>", f"must be a {KIND} mapping")
    _check_keys(raw, {"apiVersion", "kind", "defaultMode", "nodes"}, "")
    if raw.get("apiVersion") != API_VERSION:
        raise ConfigError("apiVersion", f"must be {API_VERSION!r}, got {strict.type_name(raw.get('apiVersion'))}")
    if raw.get("kind") != KIND:
        raise ConfigError("kind", f"must be {KIND!r}, got {strict.type_name(raw.get('kind'))}")
    default = parse_mode(raw.get("defaultMode", "whole"), "defaultMode")
    nodes = raw.get("nodes") or []
    if not isinstance(nodes, list):
        raise ConfigError("nodes", "must be a list")
    return PartitioningConfig(default, tuple(_rule(r, f"nodes[{i}]") for i, r in enumerate(nodes)))
