"""The controller's inputs, as read from the API (or YAML files): one immutable snapshot. Pure.

Pending demand comes in *units*: a pod that is not bound to a node yet and whose claims are not all
allocated; its unallocated claims must be allocated together, as the scheduler does. Change history (for
cooldowns and the rate limit) lives in each NodeGpuModes object's annotation ``HISTORY_ANNOTATION``
(``{"<gpu uuid>": <unix seconds of its last change>}``), so it survives a controller restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from api import gpumodes
from api.errors import ConfigError
from api.names import DEFAULT_DRIVER_NAME, GROUP
from controller.planner.view import ViewMemo
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.structured import parse_claim, parse_slice
from dra_driver.structured.model import Claim, Slice

Obj = Mapping[str, Any]
HISTORY_ANNOTATION = f"{GROUP}/mode-changes"


@dataclass(frozen=True)
class World:
    nodes: Mapping[str, Mapping[str, str]]  # node name -> labels
    slices: Sequence[Obj]
    classes: Sequence[Obj]
    claims: Sequence[Obj]
    pods: Sequence[Obj]
    node_modes: Sequence[Obj] = ()  # NodeGpuModes objects
    caps: Capabilities = field(default_factory=Capabilities)
    driver: str = DEFAULT_DRIVER_NAME
    parse: Callable[[Obj], Slice] = parse_slice  # a long-lived caller's ParsedSlices reuses unchanged slices
    views: ViewMemo | None = None  # and its ViewMemo unchanged nodes' views


@dataclass(frozen=True)
class Unit:
    """One pending pod's unallocated claims."""

    pod: str  # namespace/name
    claims: tuple[Obj, ...]
    created: float  # unix seconds (the pod's creation)
    node_selector: tuple[tuple[str, str], ...]

    @property
    def claim_keys(self) -> tuple[str, ...]:
        return tuple(key(c) for c in self.claims)

    def admits(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.node_selector)

    @cached_property
    def shape(self) -> str:
        """Units of one shape get the same answer from the allocator on a node (same specs, same selector)."""
        specs = [json.dumps(c.get("spec") or {}, sort_keys=True) for c in self.claims]
        return json.dumps([specs, self.node_selector])

    @cached_property
    def parsed(self) -> tuple[Claim, ...]:
        return tuple(parse_claim(c) for c in self.claims)


def key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def timestamp(text: object) -> float:
    """RFC 3339 -> unix seconds; 0 when absent or malformed (an object without a time counts as old)."""
    if not isinstance(text, str):
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def allocated(claim: Obj) -> bool:
    return bool((claim.get("status") or {}).get("allocation"))


def _pod_claim_names(pod: Obj) -> list[str | None]:
    """The claim each of the pod's resourceClaims entries resolves to (None: template not instantiated yet)."""
    statuses = {
        s.get("name"): s.get("resourceClaimName") for s in (pod.get("status") or {}).get("resourceClaimStatuses") or ()
    }
    names: list[str | None] = []
    for ref in (pod.get("spec") or {}).get("resourceClaims") or ():
        names.append(ref.get("resourceClaimName") or statuses.get(ref.get("name")))
    return names


def pending_units(pods: Sequence[Obj], claims: Sequence[Obj]) -> list[Unit]:
    """Units of pods waiting for the scheduler, oldest first; a claim two pods share is counted once."""
    by_key = {key(c): c for c in claims}
    seen: set[str] = set()
    units = []
    for pod in sorted(pods, key=lambda p: (timestamp((p.get("metadata") or {}).get("creationTimestamp")), key(p))):
        spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
        if spec.get("nodeName") or (pod.get("status") or {}).get("phase", "Pending") != "Pending":
            continue
        if meta.get("deletionTimestamp"):
            continue
        ns = meta.get("namespace", "default")
        names = _pod_claim_names(pod)
        if not names or any(n is None for n in names):
            continue
        found = [by_key.get(f"{ns}/{n}") for n in names]
        if any(c is None for c in found):
            continue
        todo = tuple(c for c in found if c is not None and not allocated(c) and key(c) not in seen)
        if not todo:
            continue
        seen.update(key(c) for c in todo)
        selector = tuple(sorted((str(k), str(v)) for k, v in (spec.get("nodeSelector") or {}).items()))
        units.append(Unit(key(pod), todo, timestamp(meta.get("creationTimestamp")), selector))
    return units


@dataclass(frozen=True)
class NodeModes:
    """One node's NodeGpuModes: desired spec, observed status, change history."""

    spec: gpumodes.NodeGpuModesSpec
    status: gpumodes.NodeGpuModesStatus
    generation: int
    history: Mapping[str, float]  # gpu uuid -> unix seconds of its last change

    def in_flight(self, uuid: str) -> gpumodes.GpuModeSpec | None:
        """The desired entry for ``uuid`` while the plugin has not applied it (None: settled or not named)."""
        want = self.spec.for_gpu(uuid)
        if want is None:
            return None
        got = self.status.for_gpu(uuid)
        settled = (
            got is not None
            and got.state == "Applied"
            and got.mode == want.mode
            and (got.mig_layout or None) == (want.mig_layout or None)
            and (self.status.observed_generation or 0) >= self.generation
        )
        return None if settled else want


def history(meta: Obj) -> dict[str, float]:
    raw = (meta.get("annotations") or {}).get(HISTORY_ANNOTATION)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"metadata.annotations[{HISTORY_ANNOTATION}]", f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, int | float) for v in data.values()):
        raise ConfigError(f"metadata.annotations[{HISTORY_ANNOTATION}]", "must map GPU UUIDs to unix seconds")
    return {str(k): float(v) for k, v in data.items()}


def node_modes(objects: Sequence[Obj]) -> dict[str, NodeModes]:
    out = {}
    for obj in objects:
        parsed = gpumodes.parse_object(obj)
        out[parsed.name] = NodeModes(parsed.spec, parsed.status, parsed.generation, history(obj.get("metadata") or {}))
    return out
