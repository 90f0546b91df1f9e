"""Decide the cluster's ``Capabilities`` once, by asking the API server (discovery + server-side dry runs).

A dry-run create goes through defaulting, validation and the feature-gate field drops, so "the field
came back" is exactly "this server keeps it" — on every version and gate combination.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dra_driver.errors import FatalError
from dra_driver.k8s import ApiError, Kube, resource_path
from dra_driver.resourceslice import render
from dra_driver.resourceslice.capabilities import API_VERSIONS, Capabilities
from dra_driver.resourceslice.model import CounterConsumption, CounterSet, Device, Pool, SliceContent

log = logging.getLogger(__name__)
PROBE_DRIVER = "probe.gpu.dra-driver.dev"


def served_version(kube: Kube) -> str:
    group = kube.get("/apis/resource.k8s.io")
    served = {v["version"] for v in (group or {}).get("versions", [])}
    for version in API_VERSIONS:
        if version in served:
            return version
    raise FatalError(
        "the API server serves no resource.k8s.io version this driver speaks "
        f"({', '.join(API_VERSIONS)}); use Kubernetes 1.32+ with DynamicResourceAllocation enabled"
    )


def _dry_run_create(kube: Kube, version: str, resource: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """What the server would store for ``body`` (a dry-run create), or None if it rejects it."""
    body = {"apiVersion": f"resource.k8s.io/{version}", "metadata": {"name": "dra-gpu-capability-probe"}, **body}
    try:
        created: dict[str, Any] = kube.create(resource_path(f"resource.k8s.io/{version}", resource), body, dryRun="All")
        return created
    except ApiError as exc:
        if exc.status in (400, 422):
            log.debug("capability probe rejected: %s", exc)
            return None
        raise


def _probe_slice(kube: Kube, version: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    spec = {k: v for k, v in spec.items() if k != "nodeName"} | {"allNodes": True}
    return _dry_run_create(kube, version, "resourceslices", {"kind": "ResourceSlice", "spec": spec})


def _dry_run_slice(kube: Kube, version: str, content: SliceContent) -> dict[str, Any] | None:
    return _probe_slice(
        kube, version, render.slice_spec(content, Pool(PROBE_DRIVER, "probe", (content,)), 1, 1, version)
    )


def _device_kept(kube: Kube, version: str, device: Device, field: str) -> bool:
    created = _dry_run_slice(kube, version, SliceContent(devices=(device,)))
    if created is None:
        return False
    body = created["spec"]["devices"][0]
    body = body.get("basic", body)
    return field in body


def probe(kube: Kube) -> Capabilities:
    """The served version, then its five dry runs side by side (each is one round trip to the API server)."""
    version = served_version(kube)
    counters = CounterSet("probe", (("c", "1"),))
    consumer = Device("d", (), (), (CounterConsumption("probe", (("c", "1"),)),))
    multiple = Device("d", (), (), allow_multiple_allocations=True)
    with ThreadPoolExecutor(max_workers=5, thread_name_prefix="probe") as pool:
        alone = pool.submit(_dry_run_slice, kube, version, SliceContent(counter_sets=(counters,)))
        together = pool.submit(
            _dry_run_slice, kube, version, SliceContent(devices=(consumer,), counter_sets=(counters,))
        )
        taints = pool.submit(_taints_kept, kube, version)
        consumable = pool.submit(_device_kept, kube, version, multiple, "allowMultipleAllocations")
        extended = pool.submit(_extended_resource_kept, kube, version)
    own_slice_ok = (a := alone.result()) is not None and bool(a["spec"].get("sharedCounters"))
    together_ok = (t := together.result()) is not None and bool(t["spec"].get("sharedCounters"))
    caps = Capabilities(
        api_version=version,
        partitionable_devices=own_slice_ok or together_ok,
        counters_in_own_slice=own_slice_ok and not together_ok,
        device_taints=taints.result(),
        consumable_capacity=consumable.result(),
        extended_resource_name=extended.result(),
    )
    log.info("cluster capabilities: %s", caps)
    return caps


def _taints_kept(kube: Kube, version: str) -> bool:
    taints = {"taints": [{"key": "probe", "effect": "NoSchedule"}]}
    device = {"name": "d", "basic": taints} if version == "v1beta1" else {"name": "d", **taints}
    pool = {"name": "probe", "generation": 1, "resourceSliceCount": 1}
    created = _probe_slice(kube, version, {"driver": PROBE_DRIVER, "pool": pool, "devices": [device]})
    if created is None:
        return False
    got = created["spec"]["devices"][0]
    return "taints" in got.get("basic", got)


def _extended_resource_kept(kube: Kube, version: str) -> bool:
    body = {"kind": "DeviceClass", "spec": {"extendedResourceName": "probe.gpu.dra-driver.dev/gpu"}}
    created = _dry_run_create(kube, version, "deviceclasses", body)
    return created is not None and "extendedResourceName" in created.get("spec", {})
