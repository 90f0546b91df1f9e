"""Helpers for e2e tests that run pods on a plugin node and read back what the plugin did."""

from __future__ import annotations

import json
from typing import Any

from dra_driver.k8s import Kube
from e2e import claims
from e2e.plugin_node import PluginNode
from e2e.wait import until

R = "/apis/resource.k8s.io/v1"


def running(kube: Kube, ns: str, pods: list[str], node: PluginNode) -> None:
    until(
        lambda: all(
            (kube.get(f"/api/v1/namespaces/{ns}/pods/{p}") or {}).get("status", {}).get("phase") == "Running"
            for p in pods
        ),
        f"{pods} Running (plugin log: {node.logs[-1]})",
        timeout=90,
    )


def delete_all(kube: Kube, ns: str, pods: list[str]) -> None:
    for p in pods:
        kube.delete(f"/api/v1/namespaces/{ns}/pods/{p}")
    until(lambda: all(kube.get(f"/api/v1/namespaces/{ns}/pods/{p}") is None for p in pods), "pods gone", timeout=90)


def spec_of(node: PluginNode, claim: dict[str, Any]) -> dict[str, Any]:
    (path,) = [p for p in node.cdi_dir.glob("*.json") if claim["metadata"]["uid"] in p.name]
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


def status_uuids(claim: dict[str, Any]) -> list[str]:
    return [d["data"]["uuid"] for d in claim["status"].get("devices") or []]


def claim_with_status(kube: Kube, ns: str, pod: str | None = None, name: str | None = None) -> dict[str, Any]:
    """The pod's (or named) claim once the plugin has written its device status (written off the prepare path)."""

    def get() -> dict[str, Any] | None:
        claim = claims.claim_of(kube, ns, pod) if pod else kube.get(f"{R}/namespaces/{ns}/resourceclaims/{name}")
        return claim if claim and status_uuids(claim) else None

    return until(get, "status.devices on the claim", timeout=30)
