"""Simulated Nodes: Node objects that look like a healthy kubelet keeps them, with no kubelet behind them.

:func:`register_node` creates (or adopts) the Node, reports capacity/allocatable and a Ready condition, creates
its Lease in ``kube-node-lease``, and starts a thread that renews the Lease every ``lease_interval`` seconds
(10 s, like the kubelet) and refreshes the Ready condition's heartbeat every ``status_interval`` seconds (30 s,
well inside the controller's 50 s grace period even if the Lease were ignored). The node lifecycle
controller therefore neither taints the node ``unreachable`` nor ``not-ready``; the node has no taints, so pods
schedule onto it (and stay there: nothing runs containers).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox.versions import KUBERNETES_VERSION

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_S = 40
SIMULATED_LABEL = "sandbox.dra-driver.dev/simulated"

Obj = dict[str, Any]
M = TypeVar("M", client.V1Node, client.V1Lease)


@dataclass(frozen=True)
class NodeSpec:
    name: str
    cpu: str = "16"
    memory: str = "64Gi"
    pods: str = "110"
    labels: Mapping[str, str] = field(default_factory=dict)

    def all_labels(self) -> dict[str, str]:
        return {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            SIMULATED_LABEL: "true",
            **self.labels,
        }


@dataclass(frozen=True)
class Heartbeat:
    lease_interval: float = 10.0
    status_interval: float = 30.0


def now_rfc3339(micro: bool = False) -> str:
    stamp = datetime.now(UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def node_manifest(spec: NodeSpec) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": spec.name, "labels": spec.all_labels()}}


def node_status(spec: NodeSpec, transition_time: str, heartbeat_time: str) -> Obj:
    """The ``status`` a healthy kubelet reports: resources, Ready, no pressure, its version."""
    resources = {"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods}

    def condition(kind: str, status: str, reason: str, message: str) -> Obj:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": heartbeat_time,
            "lastTransitionTime": transition_time,
        }

    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "simulated node"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "simulated node"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "simulated node"),
            condition("Ready", "True", "KubeletReady", "simulated node (dra-driver sandbox)"),
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": spec.name}],
        "nodeInfo": {
            "kubeletVersion": KUBERNETES_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
            "osImage": "dra-driver sandbox",
            "containerRuntimeVersion": "sandbox://0",
            "kernelVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kubeProxyVersion": "",
        },
    }


def lease_manifest(spec: NodeSpec, node_uid: str, renew_time: str) -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": spec.name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": spec.name, "uid": node_uid}],
        },
        "spec": {"holderIdentity": spec.name, "leaseDurationSeconds": LEASE_DURATION_S, "renewTime": renew_time},
    }


class SimulatedNode:
    """One registered Node and the thread keeping it alive; :meth:`stop` ends the heartbeats."""

    def __init__(self, api: client.ApiClient, spec: NodeSpec, heartbeat: Heartbeat) -> None:
        self.spec = spec
        self._core = client.CoreV1Api(api)
        self._coordination = client.CoordinationV1Api(api)
        self._heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"node-heartbeat-{spec.name}", daemon=True)
        self._transition_time = now_rfc3339()
        self.lease_renewals = 0

    @property
    def name(self) -> str:
        return self.spec.name

    def register(self) -> None:
        """Create or adopt the Node, report it Ready, create its Lease, start the heartbeats."""
        try:
            node = self._core.create_node(_model(client.V1Node, node_manifest(self.spec)))
        except ApiException as exc:
            if exc.status != 409:
                raise
            node = self._core.patch_node(self.spec.name, {"metadata": {"labels": self.spec.all_labels()}})
        self._report_status()
        assert node.metadata is not None
        self._ensure_lease(str(node.metadata.uid))
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        interval = min(self._heartbeat.lease_interval, self._heartbeat.status_interval)
        since_status = 0.0
        while not self._stop.wait(interval):
            since_status += interval
            try:
                self._renew_lease()
                if since_status >= self._heartbeat.status_interval:
                    since_status = 0.0
                    self._report_status()
            except Exception as exc:  # keep beating: the API server may be restarting or briefly overloaded
                log.warning("heartbeat of simulated node %s failed (will retry): %s", self.spec.name, exc)

    def _report_status(self) -> None:
        status = node_status(self.spec, self._transition_time, now_rfc3339())
        self._core.patch_node_status(self.spec.name, {"status": status})

    def _ensure_lease(self, node_uid: str) -> None:
        body = _model(client.V1Lease, lease_manifest(self.spec, node_uid, now_rfc3339(micro=True)))
        try:
            self._coordination.create_namespaced_lease(LEASE_NAMESPACE, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self._coordination.replace_namespaced_lease(self.spec.name, LEASE_NAMESPACE, body)

    def _renew_lease(self) -> None:
        patch = {"spec": {"holderIdentity": self.spec.name, "renewTime": now_rfc3339(micro=True)}}
        self._coordination.patch_namespaced_lease(self.spec.name, LEASE_NAMESPACE, patch)
        self.lease_renewals += 1


def _model(cls: type[M], doc: Obj) -> M:
    model = cls.from_dict(doc)
    assert model is not None
    return model


def register_node(
    api: client.ApiClient,
    name: str,
    cpu: str = "16",
    memory: str = "64Gi",
    pods: str = "110",
    labels: Mapping[str, str] | None = None,
    heartbeat: Heartbeat | None = None,
) -> SimulatedNode:
    """Register a simulated, schedulable, Ready node and keep it so until ``.stop()``."""
    node = SimulatedNode(api, NodeSpec(name, cpu, memory, pods, dict(labels or {})), heartbeat or Heartbeat())
    node.register()
    return node
