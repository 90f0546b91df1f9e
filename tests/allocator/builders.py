"""Hand-written resource.k8s.io/v1 objects for allocator tests, as the API server would return them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dra_driver.structured import ClusterState, Node, cluster_state

DRIVER = "gpu.dra-driver.dev"
NODE = Node("node-1", {"kubernetes.io/hostname": "node-1", "zone": "a"})
Obj = dict[str, Any]


class Version(str):
    """Marks an attribute value as a semantic version."""


def attributes(**values: object) -> Obj:
    out: Obj = {}
    for name, value in values.items():
        key = name.replace("__", "/").replace("_dot_", ".")
        if isinstance(value, Version):
            out[key] = {"version": str(value)}
        elif isinstance(value, bool):
            out[key] = {"bool": value}
        elif isinstance(value, int):
            out[key] = {"int": value}
        else:
            out[key] = {"string": str(value)}
    return out


def device(name: str, attrs: Obj | None = None, capacity: Mapping[str, str] | None = None, **extra: Any) -> Obj:
    out: Obj = {"name": name}
    if attrs:
        out["attributes"] = attrs
    if capacity:
        out["capacity"] = {k: {"value": v} for k, v in capacity.items()}
    out.update(extra)
    return out


def consumes(counter_set: str, **counters: str) -> Obj:
    return {"counterSet": counter_set, "counters": {k.replace("_", "-"): {"value": v} for k, v in counters.items()}}


def counter_set(name: str, **counters: str) -> Obj:
    return {"name": name, "counters": {k.replace("_", "-"): {"value": v} for k, v in counters.items()}}


def resource_slice(
    name: str,
    devices: Iterable[Obj] = (),
    *,
    node: str | None = "node-1",
    pool: str = "node-1",
    generation: int = 1,
    count: int = 1,
    driver: str = DRIVER,
    shared_counters: Iterable[Obj] = (),
    **selection: Any,
) -> Obj:
    spec: Obj = {"driver": driver, "pool": {"name": pool, "generation": generation, "resourceSliceCount": count}}
    if selection:
        spec.update(selection)
    elif node is not None:
        spec["nodeName"] = node
    devices = list(devices)
    if devices:
        spec["devices"] = devices
    if shared_counters:
        spec["sharedCounters"] = list(shared_counters)
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": name}, "spec": spec}


def device_class(name: str = "gpu", *expressions: str, driver: str | None = DRIVER) -> Obj:
    selectors = [{"cel": {"expression": e}} for e in expressions]
    if driver is not None:
        selectors.insert(0, {"cel": {"expression": f'device.driver == "{driver}"'}})
    return {"metadata": {"name": name}, "spec": {"selectors": selectors}}


def exact(name: str, device_class: str = "gpu", count: int | None = None, *selectors: str, **extra: Any) -> Obj:
    exactly: Obj = {"deviceClassName": device_class}
    if count is not None:
        exactly["count"] = count
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": e}} for e in selectors]
    exactly.update(extra)
    return {"name": name, "exactly": exactly}


def sub(name: str, device_class: str = "gpu", count: int | None = None, *selectors: str, **extra: Any) -> Obj:
    return {"name": name, **exact(name, device_class, count, *selectors, **extra)["exactly"]}


def first_available(name: str, *subrequests: Obj) -> Obj:
    return {"name": name, "firstAvailable": list(subrequests)}


def claim(name: str, *requests: Obj, constraints: Iterable[Obj] = (), namespace: str = "default") -> Obj:
    devices: Obj = {"requests": list(requests)}
    if constraints:
        devices["constraints"] = list(constraints)
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"}, "spec": {"devices": devices}}


def allocated(name: str, *results: Obj) -> Obj:
    out = claim(name, exact("gpu"))
    out["status"] = {"allocation": {"devices": {"results": list(results)}}}
    return out


def result(device: str, request: str = "gpu", pool: str = "node-1", driver: str = DRIVER, **extra: Any) -> Obj:
    return {"request": request, "driver": driver, "pool": pool, "device": device, **extra}


def cluster(slices: Iterable[Obj], classes: Iterable[Obj] = (), allocated_claims: Iterable[Obj] = ()) -> ClusterState:
    classes = list(classes) or [device_class()]
    return cluster_state(list(slices), classes, list(allocated_claims))


def gpus(n: int, prefix: str = "gpu", **attrs: object) -> list[Obj]:
    return [device(f"{prefix}-{i}", attributes(index=i, **attrs)) for i in range(n)]
