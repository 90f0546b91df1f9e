"""Pool -> ResourceSlice objects as the chosen resource.k8s.io version spells them. Pure."""

from __future__ import annotations

from typing import Any

from dra_driver.resourceslice.model import Attr, Capacity, Device, Pool, SliceContent, Version

Obj = dict[str, Any]


def slice_name(driver: str, node: str, index: int) -> str:
    """Stable names whose order is the slice order (first fit walks slices by name)."""
    return f"{node}-{driver}-{index:02d}"


def _attr(value: Attr) -> Obj:
    if isinstance(value, Version):
        return {"version": value.text}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    return {"string": value}


def _capacity(c: Capacity) -> Obj:
    out: Obj = {"value": c.value}
    if c.policy is not None:
        valid: Obj = {"min": c.policy.min}
        if c.policy.max is not None:
            valid["max"] = c.policy.max
        valid["step"] = c.policy.step
        out["requestPolicy"] = {"default": c.policy.default, "validRange": valid}
    return out


def _device_body(d: Device) -> Obj:
    body: Obj = {}
    if d.attributes:
        body["attributes"] = {k: _attr(v) for k, v in d.attributes}
    if d.capacity:
        body["capacity"] = {k: _capacity(c) for k, c in d.capacity}
    if d.consumes:
        body["consumesCounters"] = [
            {"counterSet": c.counter_set, "counters": {k: {"value": v} for k, v in c.counters}} for c in d.consumes
        ]
    if d.allow_multiple_allocations:
        body["allowMultipleAllocations"] = True
    if d.taints:
        body["taints"] = [
            {"key": t.key, **({"value": t.value} if t.value else {}), "effect": t.effect, "timeAdded": t.time_added}
            for t in d.taints
        ]
    return body


def device(d: Device, api_version: str) -> Obj:
    if api_version == "v1beta1":
        return {"name": d.name, "basic": _device_body(d)}
    return {"name": d.name, **_device_body(d)}


def slice_spec(content: SliceContent, pool: Pool, generation: int, count: int, api_version: str) -> Obj:
    spec: Obj = {
        "driver": pool.driver,
        "nodeName": pool.node,
        "pool": {"name": pool.node, "generation": generation, "resourceSliceCount": count},
    }
    if content.devices:
        spec["devices"] = [device(d, api_version) for d in content.devices]
    if content.counter_sets:
        spec["sharedCounters"] = [
            {"name": s.name, "counters": {k: {"value": v} for k, v in s.counters}} for s in content.counter_sets
        ]
    return spec


def render(pool: Pool, generation: int, api_version: str, owner: Obj | None = None) -> list[Obj]:
    """Full ResourceSlice objects, named ``slice_name(...)``, all at ``generation``."""
    out = []
    for i, content in enumerate(pool.slices):
        meta: Obj = {"name": slice_name(pool.driver, pool.node, i)}
        if owner is not None:
            meta["ownerReferences"] = [owner]
        out.append(
            {
                "apiVersion": f"resource.k8s.io/{api_version}",
                "kind": "ResourceSlice",
                "metadata": meta,
                "spec": slice_spec(content, pool, generation, len(pool.slices), api_version),
            }
        )
    return out
