"""A simulated kubelet for one node: the DRA part of the kubelet's pod lifecycle, against the real API.

For pods bound to its node it resolves their ResourceClaims, waits until they are allocated and
reserved for the pod, calls ``NodePrepareResources`` on the claims' drivers and marks the pod Running
(no containers are run). A per-claim error becomes a Warning event on the pod
(``FailedPrepareDynamicResources``) and is retried with exponential backoff, as the kubelet does.
On pod deletion it calls ``NodeUnprepareResources`` and then removes the pod. ResourceSlices of a
driver whose plugin stays unreachable for ``slice_grace_s`` are deleted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dra_driver.k8s import ApiError, Kube, Obj
from dra_driver.kubeletplugin.protocol import ClaimRef
from sandbox.kubelet.plugins import PluginCallError, PluginWatcher

log = logging.getLogger(__name__)
RESOURCE_API = "/apis/resource.k8s.io/v1"
STRATEGIC = "application/strategic-merge-patch+json"
FAILED_PREPARE = "FailedPrepareDynamicResources"
FAILED_UNPREPARE = "FailedUnprepareDynamicResources"


class NotReady(Exception):
    """The pod cannot start yet for a reason that will pass on its own (claim not yet allocated...)."""


@dataclass(frozen=True)
class PodClaim:
    driver: str
    ref: ClaimRef


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimulatedKubelet:
    def __init__(self, kube: Kube, node: str, root: Path, poll_s: float = 0.3, slice_grace_s: float = 30.0) -> None:
        self.kube = kube
        self.node = node
        self.root = root
        self.registry_dir = root / "plugins_registry"
        self.plugins_dir = root / "plugins"
        self.poll_s = poll_s
        self.slice_grace_s = slice_grace_s
        self.watcher = PluginWatcher(self.registry_dir)
        self._prepared: dict[str, list[PodClaim]] = {}  # pod uid -> claims prepared for it
        self._retry: dict[str, tuple[float, float]] = {}  # pod uid -> (next attempt, current delay)
        self._last_event: dict[str, str] = {}  # pod uid -> last event message (no event spam)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kubelet:{node}", daemon=True)

    def start(self) -> None:
        self.plugins_dir.mkdir(parents=True, exist_ok=True)
        self.watcher.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.watcher.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.sync_once()
            except Exception:
                log.exception("kubelet %s: sync failed", self.node)

    def sync_once(self) -> None:
        pods = self.kube.list("/api/v1/pods", fieldSelector=f"spec.nodeName={self.node}")
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if time.monotonic() < self._retry.get(uid, (0.0, 0.0))[0]:
                continue
            if pod["metadata"].get("deletionTimestamp"):
                self._attempt(pod, self._terminate)
            elif pod.get("status", {}).get("phase", "Pending") == "Pending":
                self._attempt(pod, self._start)
        self._collect_slices_of_unreachable_drivers()

    def _attempt(self, pod: Obj, step: Any) -> None:
        uid = pod["metadata"]["uid"]
        try:
            step(pod)
        except NotReady as exc:
            log.debug("pod %s not ready: %s", pod["metadata"]["name"], exc)
        except (PluginCallError, ApiError, RuntimeError) as exc:
            reason = FAILED_UNPREPARE if pod["metadata"].get("deletionTimestamp") else FAILED_PREPARE
            self._event(pod, reason, str(exc))
            delay = min(self._retry.get(uid, (0.0, 0.5))[1] * 2, 30.0)
            self._retry[uid] = (time.monotonic() + delay, delay)
        else:
            self._retry.pop(uid, None)

    # --- start ---------------------------------------------------------------------------------

    def _claims_of(self, pod: Obj) -> list[PodClaim]:
        ns = pod["metadata"]["namespace"]
        generated = {
            s["name"]: s.get("resourceClaimName") for s in pod.get("status", {}).get("resourceClaimStatuses") or []
        }
        claims: list[PodClaim] = []
        for entry in pod["spec"].get("resourceClaims") or []:
            name = entry.get("resourceClaimName") or generated.get(entry["name"])
            if not name:
                raise NotReady(f"claim for {entry['name']!r} not created yet")
            claim = self.kube.get(f"{RESOURCE_API}/namespaces/{ns}/resourceclaims/{name}")
            if claim is None:
                raise NotReady(f"claim {ns}/{name} not found yet")
            allocation = claim.get("status", {}).get("allocation")
            reserved = {r.get("uid") for r in claim.get("status", {}).get("reservedFor") or []}
            if not allocation or pod["metadata"]["uid"] not in reserved:
                raise NotReady(f"claim {ns}/{name} not allocated and reserved for the pod yet")
            ref = ClaimRef(ns, claim["metadata"]["uid"], name)
            drivers = sorted({r["driver"] for r in allocation.get("devices", {}).get("results") or []})
            claims.extend(PodClaim(driver, ref) for driver in drivers)
        return claims

    def _start(self, pod: Obj) -> None:
        claims = self._claims_of(pod)
        self._prepared[pod["metadata"]["uid"]] = claims  # like the kubelet's claim cache: recorded before prepare
        errors = []
        for driver in sorted({c.driver for c in claims}):
            refs = [c.ref for c in claims if c.driver == driver]
            plugin = self.watcher.plugin(driver)
            if plugin is None:
                raise RuntimeError(f"DRA driver {driver} is not registered on node {self.node}")
            results = plugin.prepare(refs)
            for ref in refs:
                result = results.get(ref.uid)
                if result is None:
                    errors.append(f"claim {ref}: plugin {driver} returned no result")
                elif result.error:
                    errors.append(f"prepare claim {ref.namespace}/{ref.name}: {result.error}")
        if errors:
            raise RuntimeError("; ".join(errors))
        self._mark_running(pod)

    def _mark_running(self, pod: Obj) -> None:
        now = _now()
        conditions = [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
        ]
        containers = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "containerID": f"sim://{uuid.uuid4().hex}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for c in pod["spec"]["containers"]
        ]
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": now,
            "conditions": conditions,
            "containerStatuses": containers,
        }
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.kube.patch(f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": status}, content_type=STRATEGIC)
        log.info("pod %s/%s running on %s", ns, name, self.node)

    # --- terminate -----------------------------------------------------------------------------

    def _terminate(self, pod: Obj) -> None:
        """Unprepare what this kubelet prepared for the pod (its claim cache, like the kubelet's), then remove it."""
        uid = pod["metadata"]["uid"]
        claims = self._prepared.get(uid, [])
        errors = []
        for driver in sorted({c.driver for c in claims}):
            plugin = self.watcher.plugin(driver)
            if plugin is None:
                raise RuntimeError(f"DRA driver {driver} is not registered on node {self.node}")
            refs = [c.ref for c in claims if c.driver == driver]
            results = plugin.unprepare(refs)
            for ref in refs:
                error = results.get(ref.uid)
                if error is None:
                    errors.append(f"unprepare claim {ref}: plugin {driver} returned no result")
                elif error:
                    errors.append(f"unprepare claim {ref.namespace}/{ref.name}: {error}")
        if errors:
            raise RuntimeError("; ".join(errors))
        self._prepared.pop(uid, None)
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.kube.delete(f"/api/v1/namespaces/{ns}/pods/{name}", gracePeriodSeconds="0")
        self._last_event.pop(uid, None)
        log.info("pod %s/%s removed from %s", ns, name, self.node)

    # --- events and slices ---------------------------------------------------------------------

    def _event(self, pod: Obj, reason: str, message: str) -> None:
        uid = pod["metadata"]["uid"]
        if self._last_event.get(uid) == message:
            return
        self._last_event[uid] = message
        meta = pod["metadata"]
        now = _now()
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": uid,
            },
            "reason": reason,
            "message": message,
            "type": "Warning",
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.kube.create(f"/api/v1/namespaces/{meta['namespace']}/events", event)
        except ApiError as exc:
            log.warning("could not record event for %s: %s", meta["name"], exc)
        log.warning("pod %s/%s: %s: %s", meta["namespace"], meta["name"], reason, message)

    def _collect_slices_of_unreachable_drivers(self) -> None:
        now = time.monotonic()
        for driver, since in list(self.watcher.unreachable_since.items()):
            if now - since < self.slice_grace_s:
                continue
            selector = f"spec.nodeName={self.node},spec.driver={driver}"
            for s in self.kube.list(f"{RESOURCE_API}/resourceslices", fieldSelector=selector):
                self.kube.delete(f"{RESOURCE_API}/resourceslices/{s['metadata']['name']}")
                log.info("deleted ResourceSlice %s of unreachable driver %s", s["metadata"]["name"], driver)
            self.watcher.unreachable_since.pop(driver, None)
