"""Helpers that create claim templates and pods the way users write them, and read back allocations."""

from __future__ import annotations

import uuid
from typing import Any

from dra_driver.k8s import Kube, Obj

R = "/apis/resource.k8s.io/v1"


def template(
    kube: Kube,
    ns: str,
    device_class: str,
    selectors: list[str] | None = None,
    count: int = 1,
    config: list[Obj] | None = None,
) -> str:
    name = f"t-{uuid.uuid4().hex[:6]}"
    exactly: dict[str, Any] = {"deviceClassName": device_class, "count": count}
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": e}} for e in selectors]
    devices: dict[str, Any] = {"requests": [{"name": "gpu", "exactly": exactly}]}
    if config:
        devices["config"] = config
    body = {"metadata": {"name": name}, "spec": {"spec": {"devices": devices}}}
    kube.create(f"{R}/namespaces/{ns}/resourceclaimtemplates", body)
    return name


def pod(kube: Kube, ns: str, node: str, template_name: str, name: str | None = None) -> str:
    """A pod on ``node`` whose claim ``gpu`` is made from the template ``template_name``."""
    return _pod(kube, ns, node, {"resourceClaimTemplateName": template_name}, name)


def pod_with_claim(kube: Kube, ns: str, node: str, claim_name: str, name: str | None = None) -> str:
    """A pod on ``node`` using the existing claim ``claim_name`` as its claim ``gpu``."""
    return _pod(kube, ns, node, {"resourceClaimName": claim_name}, name)


def _pod(kube: Kube, ns: str, node: str, source: dict[str, str], name: str | None) -> str:
    name = name or f"p-{uuid.uuid4().hex[:6]}"
    kube.create(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": node},
                "containers": [
                    {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"claims": [{"name": "gpu"}]}}
                ],
                "resourceClaims": [{"name": "gpu", **source}],
            },
        },
    )
    return name


def claim_of(kube: Kube, ns: str, pod_name: str) -> Obj | None:
    p = kube.get(f"/api/v1/namespaces/{ns}/pods/{pod_name}")
    statuses = (p or {}).get("status", {}).get("resourceClaimStatuses") or []
    if not statuses or not statuses[0].get("resourceClaimName"):
        return None
    return kube.get(f"{R}/namespaces/{ns}/resourceclaims/{statuses[0]['resourceClaimName']}")


def allocated_devices(kube: Kube, ns: str, pod_name: str) -> list[str] | None:
    """Device names allocated to the pod's claim, or None while it is not allocated."""
    claim = claim_of(kube, ns, pod_name)
    allocation = (claim or {}).get("status", {}).get("allocation")
    if not allocation:
        return None
    return [r["device"] for r in allocation["devices"]["results"]]


def is_unschedulable(kube: Kube, ns: str, pod_name: str) -> bool:
    p = kube.get(f"/api/v1/namespaces/{ns}/pods/{pod_name}") or {}
    return any(
        c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable"
        for c in p.get("status", {}).get("conditions") or []
    )
