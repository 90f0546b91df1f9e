"""AdmissionReview bodies as the API server sends them, for claims and templates in each served version."""

from __future__ import annotations

import json
from typing import Any

DRIVER = "gpu.dra-driver.dev"


def parameters(**sharing: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": "gpu.dra-driver.dev/v1alpha1", "kind": "GpuConfig"}
    if sharing:
        out["sharing"] = sharing
    return out


def claim_spec(version: str, config: list[dict[str, Any]]) -> dict[str, Any]:
    request: dict[str, Any] = {"name": "gpu"}
    if version == "v1beta1":
        request |= {"deviceClassName": "gpu.dra-driver.dev", "allocationMode": "ExactCount", "count": 1}
    else:
        request["exactly"] = {"deviceClassName": "gpu.dra-driver.dev", "allocationMode": "ExactCount", "count": 1}
    return {"devices": {"requests": [request], "config": config}}


def opaque(params: dict[str, Any], driver: str = DRIVER) -> dict[str, Any]:
    return {"requests": ["gpu"], "opaque": {"driver": driver, "parameters": params}}


def obj(kind: str, version: str, config: list[dict[str, Any]]) -> dict[str, Any]:
    spec = claim_spec(version, config)
    if kind == "ResourceClaimTemplate":
        spec = {"spec": spec}
    return {
        "apiVersion": f"resource.k8s.io/{version}",
        "kind": kind,
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": spec,
    }


def review(kind: str, version: str, body: dict[str, Any] | None, operation: str = "CREATE", uid: str = "u-1") -> bytes:
    resource = {"ResourceClaim": "resourceclaims", "ResourceClaimTemplate": "resourceclaimtemplates"}.get(kind, "x")
    request = {
        "uid": uid,
        "kind": {"group": "resource.k8s.io", "version": version, "kind": kind},
        "resource": {"group": "resource.k8s.io", "version": version, "resource": resource},
        "namespace": "ns",
        "name": "c",
        "operation": operation,
        "object": body,
    }
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}).encode()
