"""The chart's scenarios, run by every tier that installs the driver as users do: the real-node sandbox
(``e2e/realnode/test_helm_sandbox.py``: ``sandbox up --kubelet real --driver helm``) and kind (``e2e/kind``).

Each takes the cluster's :class:`Kube` (and an ``ApiClient`` for logs); what differs between tiers (how an image
reaches the nodes, where a node's sockets are) is passed in. The chart runs with simulated GPUs
(``simulatedGpus``), release ``gpu`` in namespace ``dra-gpu`` (sandbox/realnode/helm_driver.py), and the
workload pods run the probe on ``sandbox.local/busybox:latest`` (sandbox/realnode/probe.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api

from dra_driver.classes import class_name, device_classes
from dra_driver.k8s import Kube
from e2e.realnode import pods
from e2e.wait import until
from sandbox.realnode import helm_driver

R = "/apis/resource.k8s.io/v1"
NS = helm_driver.NAMESPACE


@dataclass(frozen=True)
class GpuPod:
    """A running workload pod with one claim, and what it got."""

    ns: str
    name: str
    container_id: str
    device: str  # the allocated device's name
    visible: tuple[str, ...]  # NVIDIA_VISIBLE_DEVICES in its container


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def plugin_pod(kube: Kube, node: str) -> dict[str, Any]:
    """The chart's Ready plugin pod on ``node`` (asserts there is exactly one)."""
    found = [p for p in helm_driver.plugin_pods(kube) if p["spec"].get("nodeName") == node and _ready(p)]
    assert len(found) == 1, f"Ready plugin pods on {node}: {[p['metadata']['name'] for p in found]}"
    return found[0]


def check_plugin_pod(kube: Kube, node: str, image: str) -> str:
    """The DaemonSet's pod on ``node`` is Ready, runs ``image`` on simulated GPUs; returns its name."""
    pod = plugin_pod(kube, node)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == image, container["image"]
    assert container["command"] == ["python", "-m", "nvml_sim.entrypoint"]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    return str(pod["metadata"]["name"])


def run_claim_pod(kube: Kube, api: ApiClient, node: str, driver: str, kind: str = "mig-1g-5gb") -> GpuPod:
    """A busybox pod on ``node`` with a claim of the ``kind`` class of ``driver``, running; what it got."""
    ns = f"helm-{uuid.uuid4().hex[:6]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
    exactly = {"deviceClassName": class_name(kind, driver)}
    template = {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": exactly}]}}}
    kube.create(f"{R}/namespaces/{ns}/resourceclaimtemplates", {"metadata": {"name": "t"}, "spec": template})
    name = pods.create(kube, ns, node, "t")
    seen = pods.seen(api, kube, ns, name)
    (claim,) = kube.list(f"{R}/namespaces/{ns}/resourceclaims")
    (result,) = claim["status"]["allocation"]["devices"]["results"]
    assert result["driver"] == driver, result
    pod = kube.get(f"/api/v1/namespaces/{ns}/pods/{name}") or {}
    (status,) = pod["status"]["containerStatuses"]
    return GpuPod(ns, name, str(status["containerID"]), str(result["device"]), seen.visible)


def check_mig_1g_5gb(pod: GpuPod) -> None:
    assert "-mig-1g-5gb-" in pod.device, pod.device
    assert len(pod.visible) == 1 and pod.visible[0].startswith("MIG-"), pod.visible


def prepared_by(api: ApiClient, plugin: str, pod: GpuPod) -> bool:
    """Whether the plugin pod ``plugin`` logged the prepare of ``pod``'s device."""
    log = CoreV1Api(api).read_namespaced_pod_log(plugin, NS)
    return f"prepared 1 device(s): {pod.device}" in log


def check_undisturbed(kube: Kube, pod: GpuPod) -> None:
    """``pod`` still runs the same container, never restarted."""
    now = kube.get(f"/api/v1/namespaces/{pod.ns}/pods/{pod.name}") or {}
    assert now.get("status", {}).get("phase") == "Running", now.get("status")
    (status,) = now["status"]["containerStatuses"]
    assert status["containerID"] == pod.container_id, (status["containerID"], pod.container_id)
    assert status["restartCount"] == 0 and "running" in status["state"], status


def wait_rolled(
    kube: Kube, nodes: Sequence[str], old: dict[str, str], image: str, timeout: float = 240
) -> dict[str, str]:
    """Wait until every node's plugin pod is a new one, Ready, on ``image``, and the ``old`` ones are gone;
    returns node -> new pod."""

    def rolled() -> dict[str, str] | None:
        all_pods = helm_driver.plugin_pods(kube)
        names = {p["metadata"]["name"] for p in all_pods}
        if names & set(old.values()):
            return None
        new = {
            p["spec"].get("nodeName", ""): p["metadata"]["name"]
            for p in all_pods
            if _ready(p) and p["spec"]["containers"][0]["image"] == image
        }
        return new if all(n in new for n in nodes) else None

    return until(rolled, f"the plugin pods rolled to {image}", timeout=timeout, interval=1.0)


def delete_pod(kube: Kube, pod: GpuPod) -> None:
    kube.delete(f"/api/v1/namespaces/{pod.ns}/pods/{pod.name}", gracePeriodSeconds="1")
    until(lambda: not kube.list(f"/api/v1/namespaces/{pod.ns}/pods"), f"pod {pod.ns}/{pod.name} gone", timeout=90)
    kube.delete(f"/api/v1/namespaces/{pod.ns}")


def check_nothing_left(kube: Kube, driver: str, nodes: Sequence[str], sockets: Callable[[str], list[str]]) -> None:
    """After ``helm uninstall``: no slices of ``driver`` (the kubelet drops a deregistered driver's slices after
    its 30 s grace period), none of its DeviceClasses, no plugin sockets on any node (``sockets(node)``)."""
    selector = f"spec.driver={driver}"
    until(lambda: not kube.list(f"{R}/resourceslices", fieldSelector=selector), f"{driver}'s slices gone", timeout=90)
    names = {c["metadata"]["name"] for c in device_classes(driver)}
    assert not names & {c["metadata"]["name"] for c in kube.list(f"{R}/deviceclasses")}
    assert not helm_driver.plugin_pods(kube)
    for node in nodes:
        assert sockets(node) == [], f"sockets left on {node}"
