"""Events on the pending claims the controller acts for, or cannot help (``events.k8s.io/v1``).

One Event per claim and distinct message: a claim that keeps waiting for the same reason is not told again
(the recorder remembers what it said, by claim UID, for as long as the claim is pending).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from controller.leader import micro_time
from dra_driver.k8s import ApiError, Kube, resource_path

log = logging.getLogger(__name__)
COMPONENT = "gpu.dra-driver.dev/mode-controller"
NOTE_MAX = 1024


class EventRecorder:
    def __init__(self, kube: Kube, instance: str) -> None:
        self.kube = kube
        self.instance = instance[:128]
        self._said: dict[str, tuple[str, str]] = {}  # claim uid -> (reason, note) last sent

    def claim(self, claim: Mapping[str, Any], reason: str, note: str, warning: bool = False) -> bool:
        """Record an event on ``claim`` unless it was told the same; whether one was written."""
        meta = claim.get("metadata") or {}
        uid, ns, name = str(meta.get("uid", "")), str(meta.get("namespace", "default")), str(meta.get("name", ""))
        if self._said.get(uid) == (reason, note):
            return False
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": f"{name[:200]}.{time.time_ns():x}", "namespace": ns},  # as client-go names them
            "eventTime": micro_time(),
            "reportingController": COMPONENT,
            "reportingInstance": self.instance,
            "action": "PlanGpuModes",
            "reason": reason,
            "note": note[:NOTE_MAX],
            "type": "Warning" if warning else "Normal",
            "regarding": {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceClaim",
                "namespace": ns,
                "name": name,
                "uid": uid,
            },
        }
        try:
            self.kube.create(resource_path("events.k8s.io/v1", "events", namespace=ns), body)
        except ApiError as exc:
            log.warning("event on claim %s/%s not recorded: %s", ns, name, exc)
            return False
        self._said[uid] = (reason, note)
        return True

    def forget_except(self, pending_uids: Iterable[str]) -> None:
        """Drop what was said to claims no longer pending (allocated or deleted)."""
        keep = set(pending_uids)
        self._said = {u: s for u, s in self._said.items() if u in keep}
