"""Writing the decided modes into each node's NodeGpuModes (the hand-off to the kubelet plugin).

The spec keeps every entry it had (GPUs pinned earlier stay pinned) and gets one entry per changed GPU; the
change time of each GPU goes into the ``world.HISTORY_ANNOTATION`` annotation (cooldowns and the rate limit
survive a restart). An existing object is replaced with the resourceVersion it was read at, so a write
racing another controller, or a stale cache, conflicts and is retried from fresh data by the next decision.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from api import gpumodes
from controller.planner import Change
from controller.planner.world import HISTORY_ANNOTATION, history
from dra_driver.k8s import ApiError, Kube, resource_path

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]


def desired(existing: Obj | None, node: str, changes: Sequence[Change], now: float) -> dict[str, Any]:
    """The object to write for ``node``: ``existing`` (or a new one) with ``changes`` applied. Pure."""
    spec = gpumodes.parse_spec((existing or {}).get("spec"))
    entries = {g.uuid: g for g in spec.gpus}
    for c in changes:
        entries[c.uuid] = gpumodes.GpuModeSpec(c.uuid, c.target.mode, c.target.layout or None)
    new_spec = gpumodes.NodeGpuModesSpec(tuple(entries.values()))
    meta = dict((existing or {}).get("metadata") or {"name": node})
    changed = history(meta) | {c.uuid: now for c in changes}
    meta["annotations"] = {**(meta.get("annotations") or {}), HISTORY_ANNOTATION: json.dumps(changed, sort_keys=True)}
    body = gpumodes.render_object(node, new_spec)
    body["metadata"] = meta
    return body


def write(kube: Kube, existing: Obj | None, node: str, changes: Sequence[Change], now: float) -> Obj | None:
    """Create or replace ``node``'s NodeGpuModes: the object as stored, or None (logged) when the API refuses,
    e.g. on a conflict."""
    body = desired(existing, node, changes, now)
    collection = resource_path(gpumodes.API_VERSION, gpumodes.PLURAL)
    try:
        if existing is None:
            return kube.create(collection, body)
        return kube.replace(resource_path(gpumodes.API_VERSION, gpumodes.PLURAL, node), body)
    except ApiError as exc:
        log.warning("NodeGpuModes %s not written (%s); the next decision retries from fresh data", node, exc)
        return None
