"""NodeGpuModes: the per-node hand-off of desired GPU modes from the controller to the kubelet plugin. Pure.

One cluster-scoped object per node, named after the node (CRD: ``deploy/crds/nodegpumodes.yaml``)::

    apiVersion: gpu.dra-driver.dev/v1alpha1
    kind: NodeGpuModes
    metadata: {name: node-1}
    spec:
      gpus:                           # only the GPUs to change or pin; the others follow PartitioningConfig
      - uuid: GPU-8f6c...
        mode: timeslice:4             # whole | mig | timeslice:N | shared (api.partitioning.parse_mode)
      - uuid: GPU-1d2e...
        mode: mig
        migLayout: [3g.20gb, 2g.10gb, 1g.5gb]   # optional, mode mig only: a static MIG layout
    status:                           # written by the kubelet plugin only (status subresource)
      observedGeneration: 3
      gpus:
      - {uuid: GPU-8f6c..., mode: timeslice:4, state: Applied, lastTransitionTime: "2026-01-01T00:00:00Z"}
      conditions:
      - {type: Applied, status: "True", reason: AllApplied, message: ..., lastTransitionTime: ...,
         observedGeneration: 3}

``spec.gpus`` entries win over the PartitioningConfig for the GPUs they name (``mode_for``). Decoding is strict:
unknown fields, duplicate GPUs and bad values are ``ConfigError``s naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from api.config import strict
from api.errors import ConfigError
from api.names import CONFIG_VERSION, GROUP
from api.partitioning import GpuMode as GpuMode
from api.partitioning import Mig, PartitioningConfig, parse_mode

KIND = "NodeGpuModes"
PLURAL = "nodegpumodes"
SINGULAR = "nodegpumodes"
VERSION = CONFIG_VERSION
API_VERSION = f"{GROUP}/{VERSION}"
CRD_NAME = f"{PLURAL}.{GROUP}"

MAX_GPUS = 64  # GPUs per node object (a node has at most 16 today)
MAX_MIG_LAYOUT = 7  # no GPU offers more than 7 MIG instances
MAX_REASON = 1024
# The patterns below are the CRD schema's too (tests/api/test_gpumodes_crd.py checks they are the same).
MODE_PATTERN = r"^(whole|mig|shared|timeslice:0*([2-9]|[1-5][0-9]|6[0-4]))$"  # = parse_mode's language
UUID_PATTERN = r"^GPU-[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$"
PROFILE_PATTERN = r"^[1-9][0-9]?g\.[1-9][0-9]{0,3}gb([+-][a-z]+(\.[a-z]+)?)?$"  # 3g.20gb, 1g.10gb+me
RFC3339_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"

State = Literal["Applied", "Pending", "Refused", "ResetRequired"]
STATES: tuple[State, ...] = get_args(State)
CONDITION_APPLIED = "Applied"


@dataclass(frozen=True)
class GpuModeSpec:
    """The desired mode of one GPU. ``mig_layout`` (mode mig only): exactly these MIG instances, in this order;
    None = MIG mode with instances made per claim (dynamic)."""

    uuid: str
    mode: GpuMode
    mig_layout: tuple[str, ...] | None = None


@dataclass(frozen=True)
class NodeGpuModesSpec:
    gpus: tuple[GpuModeSpec, ...] = ()

    def for_gpu(self, uuid: str) -> GpuModeSpec | None:
        return next((g for g in self.gpus if g.uuid == uuid), None)


@dataclass(frozen=True)
class GpuModeStatus:
    """What one GPU is now (``mode``: what its slices publish) and how the desired mode fared."""

    uuid: str
    mode: GpuMode
    state: State
    last_transition_time: str  # RFC3339, when ``state`` last changed
    mig_layout: tuple[str, ...] | None = None
    reason: str | None = None  # one line, when state is not Applied


@dataclass(frozen=True)
class Condition:
    type: str
    status: Literal["True", "False"]
    reason: str
    message: str
    last_transition_time: str
    observed_generation: int | None = None


@dataclass(frozen=True)
class NodeGpuModesStatus:
    observed_generation: int | None = None
    gpus: tuple[GpuModeStatus, ...] = ()
    conditions: tuple[Condition, ...] = ()

    def for_gpu(self, uuid: str) -> GpuModeStatus | None:
        return next((g for g in self.gpus if g.uuid == uuid), None)


@dataclass(frozen=True)
class NodeGpuModes:
    """One object as read from the API server."""

    name: str
    generation: int
    resource_version: str
    spec: NodeGpuModesSpec
    status: NodeGpuModesStatus


def mode_for(
    spec: NodeGpuModesSpec | None,
    config: PartitioningConfig,
    labels: Mapping[str, str],
    index: int,
    uuid: str,
    product_name: str,
) -> GpuModeSpec:
    """The mode a GPU should be in: its ``spec.gpus`` entry where there is one, else the PartitioningConfig's."""
    entry = spec.for_gpu(uuid) if spec is not None else None
    return entry or GpuModeSpec(uuid, config.mode_for(labels, index, uuid, product_name))


# -- decoding ---------------------------------------------------------------------------------------------------


def _mapping(raw: Any, field: str, allowed: set[str], what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(field, f"must be a mapping ({what})")
    for key in raw:
        if key not in allowed:
            path = f"{field}.{key}" if field else str(key)
            raise ConfigError(path, f"unknown field; valid fields: {', '.join(sorted(allowed))}")
    return raw


def _string(raw: Any, field: str, pattern: str, what: str) -> str:
    if not isinstance(raw, str):
        raise ConfigError(field, f"must be a string: {what}, got {strict.type_name(raw)}")
    if not re.fullmatch(pattern, raw):
        raise ConfigError(field, f"{strict.shown(raw)} is not {what}")
    return raw


def _list(raw: Any, field: str, limit: int) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(field, f"must be a list, got {strict.type_name(raw)}")
    if len(raw) > limit:
        raise ConfigError(field, f"has {len(raw)} entries, at most {limit}")
    return raw


def _uuid(raw: Any, field: str) -> str:
    return _string(raw, field, UUID_PATTERN, "a GPU UUID (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")


def _layout(raw: Any, field: str) -> tuple[str, ...]:
    items = _list(raw, field, MAX_MIG_LAYOUT)
    if not items:
        raise ConfigError(field, "must name at least one MIG profile; leave it out for MIG made per claim")
    return tuple(
        _string(p, f"{field}[{i}]", PROFILE_PATTERN, "a MIG profile name such as 3g.20gb or 1g.10gb+me")
        for i, p in enumerate(items)
    )


def _gpu_spec(raw: Any, field: str) -> GpuModeSpec:
    obj = _mapping(raw, field, {"uuid", "mode", "migLayout"}, "uuid, mode and optionally migLayout")
    for key in ("uuid", "mode"):
        if key not in obj:
            raise ConfigError(f"{field}.{key}", "required")
    uuid = _uuid(obj["uuid"], f"{field}.uuid")
    mode = parse_mode(obj["mode"], f"{field}.mode")
    layout = None
    if obj.get("migLayout") is not None:
        if not isinstance(mode, Mig):
            raise ConfigError(f"{field}.migLayout", f"only with mode mig, not {mode}")
        layout = _layout(obj["migLayout"], f"{field}.migLayout")
    return GpuModeSpec(uuid, mode, layout)


def _unique(uuids: list[str], field: str) -> None:
    seen: set[str] = set()
    for i, uuid in enumerate(uuids):
        if uuid in seen:
            raise ConfigError(f"{field}[{i}].uuid", f"{uuid} is listed twice; one entry per GPU")
        seen.add(uuid)


def parse_spec(raw: Any) -> NodeGpuModesSpec:
    """Strictly decode ``spec`` (None or ``{}`` = no GPU named); errors are ConfigErrors naming ``spec.…``."""
    if raw is None:
        return NodeGpuModesSpec()
    obj = _mapping(raw, "spec", {"gpus"}, "with gpus")
    gpus = tuple(_gpu_spec(g, f"spec.gpus[{i}]") for i, g in enumerate(_list(obj.get("gpus"), "spec.gpus", MAX_GPUS)))
    _unique([g.uuid for g in gpus], "spec.gpus")
    return NodeGpuModesSpec(gpus)


def _time(raw: Any, field: str) -> str:
    return _string(raw, field, RFC3339_PATTERN, "an RFC 3339 time such as 2026-01-01T00:00:00Z")


def _generation(raw: Any, field: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
        raise ConfigError(field, "must be a non-negative integer")
    return raw


def _text(raw: Any, field: str) -> str:
    if not isinstance(raw, str):
        raise ConfigError(field, f"must be a string, got {strict.type_name(raw)}")
    if len(raw) > MAX_REASON:
        raise ConfigError(field, f"is {len(raw)} characters long, at most {MAX_REASON}")
    return raw


def _gpu_status(raw: Any, field: str) -> GpuModeStatus:
    allowed = {"uuid", "mode", "migLayout", "state", "reason", "lastTransitionTime"}
    obj = _mapping(raw, field, allowed, "a GPU's observed mode and state")
    for key in ("uuid", "mode", "state", "lastTransitionTime"):
        if key not in obj:
            raise ConfigError(f"{field}.{key}", "required")
    state = obj["state"]
    if state not in STATES:
        raise ConfigError(f"{field}.state", f"must be one of {', '.join(STATES)}, got {strict.type_name(state)}")
    return GpuModeStatus(
        uuid=_uuid(obj["uuid"], f"{field}.uuid"),
        mode=parse_mode(obj["mode"], f"{field}.mode"),
        state=cast(State, state),
        last_transition_time=_time(obj["lastTransitionTime"], f"{field}.lastTransitionTime"),
        mig_layout=_layout(obj["migLayout"], f"{field}.migLayout") if obj.get("migLayout") else None,
        reason=_text(obj["reason"], f"{field}.reason") if obj.get("reason") is not None else None,
    )


def _condition(raw: Any, field: str) -> Condition:
    allowed = {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
    obj = _mapping(raw, field, allowed, "a condition")
    for key in ("type", "status", "reason", "lastTransitionTime"):
        if key not in obj:
            raise ConfigError(f"{field}.{key}", "required")
    if obj["status"] not in ("True", "False"):
        raise ConfigError(f"{field}.status", f'must be "True" or "False", got {strict.type_name(obj["status"])}')
    generation = obj.get("observedGeneration")
    return Condition(
        type=_text(obj["type"], f"{field}.type"),
        status=obj["status"],
        reason=_text(obj["reason"], f"{field}.reason"),
        message=_text(obj.get("message", ""), f"{field}.message"),
        last_transition_time=_time(obj["lastTransitionTime"], f"{field}.lastTransitionTime"),
        observed_generation=None if generation is None else _generation(generation, f"{field}.observedGeneration"),
    )


def parse_status(raw: Any) -> NodeGpuModesStatus:
    """Strictly decode ``status`` (None = not written yet); errors name ``status.…``."""
    if raw is None:
        return NodeGpuModesStatus()
    obj = _mapping(raw, "status", {"observedGeneration", "gpus", "conditions"}, "the plugin's status")
    generation = obj.get("observedGeneration")
    gpus = tuple(
        _gpu_status(g, f"status.gpus[{i}]") for i, g in enumerate(_list(obj.get("gpus"), "status.gpus", MAX_GPUS))
    )
    _unique([g.uuid for g in gpus], "status.gpus")
    conditions = tuple(
        _condition(c, f"status.conditions[{i}]")
        for i, c in enumerate(_list(obj.get("conditions"), "status.conditions", 16))
    )
    return NodeGpuModesStatus(
        None if generation is None else _generation(generation, "status.observedGeneration"), gpus, conditions
    )


def parse_object(raw: Any) -> NodeGpuModes:
    """A whole NodeGpuModes object (from the API server); errors name the field."""
    obj = _mapping(raw, "", {"apiVersion", "kind", "metadata", "spec", "status"}, "a NodeGpuModes object")
    if obj.get("apiVersion") != API_VERSION:
        raise ConfigError("apiVersion", f"must be {API_VERSION!r}, got {strict.type_name(obj.get('apiVersion'))}")
    if obj.get("kind") != KIND:
        raise ConfigError("kind", f"must be {KIND!r}, got {strict.type_name(obj.get('kind'))}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ConfigError("metadata.name", "required: the node's name")
    return NodeGpuModes(
        name=meta["name"],
        generation=_generation(meta.get("generation", 0), "metadata.generation"),
        resource_version=str(meta.get("resourceVersion", "")),
        spec=parse_spec(obj.get("spec")),
        status=parse_status(obj.get("status")),
    )


# -- rendering --------------------------------------------------------------------------------------------------


def _render_gpu_spec(g: GpuModeSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"uuid": g.uuid, "mode": str(g.mode)}
    if g.mig_layout is not None:
        out["migLayout"] = list(g.mig_layout)
    return out


def render_spec(spec: NodeGpuModesSpec) -> dict[str, Any]:
    return {"gpus": [_render_gpu_spec(g) for g in spec.gpus]}


def _render_gpu_status(g: GpuModeStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"uuid": g.uuid, "mode": str(g.mode), "state": g.state}
    if g.mig_layout is not None:
        out["migLayout"] = list(g.mig_layout)
    if g.reason is not None:
        out["reason"] = g.reason
    out["lastTransitionTime"] = g.last_transition_time
    return out


def _render_condition(c: Condition) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": c.type,
        "status": c.status,
        "reason": c.reason,
        "message": c.message,
        "lastTransitionTime": c.last_transition_time,
    }
    if c.observed_generation is not None:
        out["observedGeneration"] = c.observed_generation
    return out


def render_status(status: NodeGpuModesStatus) -> dict[str, Any]:
    out: dict[str, Any] = {
        "gpus": [_render_gpu_status(g) for g in status.gpus],
        "conditions": [_render_condition(c) for c in status.conditions],
    }
    if status.observed_generation is not None:
        out["observedGeneration"] = status.observed_generation
    return out


def render_object(name: str, spec: NodeGpuModesSpec) -> dict[str, Any]:
    """A new object for ``name``'s node, to create (status is the plugin's)."""
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": render_spec(spec)}
