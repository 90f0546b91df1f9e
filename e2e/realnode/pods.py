"""Pods on a real node that print what their container sees, and parsing of what they printed."""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api

from dra_driver.k8s import Kube
from e2e.wait import until
from sandbox.realnode.probe import Seen, parse, probe_container


def create(kube: Kube, ns: str, node: str, claim_template: str) -> str:
    name = f"p-{uuid.uuid4().hex[:6]}"
    kube.create(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": node},
                "terminationGracePeriodSeconds": 1,
                "containers": [probe_container({"name": "c", "resources": {"claims": [{"name": "gpu"}]}})],
                "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": claim_template}],
            },
        },
    )
    return name


def seen(api: ApiClient, kube: Kube, ns: str, pod: str, timeout: float = 120) -> Seen:
    """Wait until the pod runs and has printed its report; the report."""
    core = CoreV1Api(api)

    def report() -> Seen | None:
        status = (kube.get(f"/api/v1/namespaces/{ns}/pods/{pod}") or {}).get("status", {})
        if status.get("phase") != "Running":
            return None
        return parse(core.read_namespaced_pod_log(pod, ns, container="c"))

    return until(report, f"pod {ns}/{pod} running and reporting", timeout=timeout, interval=0.5)


def resource_health(kube: Kube, ns: str, pod: str) -> list[str]:
    """The health of every device in the pod's ``allocatedResourcesStatus`` (empty until the kubelet reports)."""
    p: dict[str, Any] = kube.get(f"/api/v1/namespaces/{ns}/pods/{pod}") or {}
    out = []
    for cs in p.get("status", {}).get("containerStatuses") or []:
        for entry in cs.get("allocatedResourcesStatus") or []:
            out += [r.get("health", "") for r in entry.get("resources") or []]
    return out
