"""GPU health as device taints: what NVML events and re-scans say about each GPU, and when it has recovered.

XIDs are the driver's error reports (NVIDIA's XID catalog). Three classes, each configurable:

- **ignored**: caused by an application, not the GPU (13, 31, 43, 45, 68, 109 by default, the set NVIDIA's
  device plugin ignores): no taint;
- **fatal** (48 double-bit ECC, 62, 64, 74 NVLink, 79 fallen off the bus, 92, 94/95 contained/uncontained ECC,
  119/120 GSP, 140): taint ``<driver>/xid=<code>:NoSchedule``, the GPU reported Unhealthy to the kubelet;
- any other XID: taint ``<driver>/xid=<code>`` with effect ``None`` (informational: the scheduler ignores it,
  ``kubectl`` and ``dra-gpu explain`` show it).

A double-bit ECC event is ``<driver>/ecc=double-bit:NoSchedule``; single-bit ECC events are not tainted.
A taint is cleared automatically once the GPU has answered NVML for ``quiet_s`` seconds without a new event
of that kind: a one-off fault clears, a recurring one keeps its taint. A GPU that stops answering NVML is
not published at all (the re-scan reports it), so it needs no taint. Pure: the caller passes the time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from dra_driver.nvml.events import GpuEvent
from dra_driver.resourceslice.model import DeviceTaint

IGNORED_XIDS = frozenset({13, 31, 43, 45, 68, 109})
FATAL_XIDS = frozenset({48, 62, 64, 74, 79, 92, 94, 95, 119, 120, 140})
NO_SCHEDULE = "NoSchedule"
INFORMATIONAL = "None"
DEFAULT_QUIET_S = 60.0


@dataclass(frozen=True)
class Condition:
    key: str
    value: str
    effect: str
    since: float  # wall clock, for timeAdded
    last_seen: float  # monotonic


def _rfc3339(wall: float) -> str:
    return datetime.fromtimestamp(int(wall), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GpuHealth:
    """Conditions per GPU UUID; thread-safe (the event thread writes, the re-scan and publisher read)."""

    def __init__(self, driver: str, quiet_s: float = DEFAULT_QUIET_S, ignored: Iterable[int] = IGNORED_XIDS) -> None:
        self._driver = driver
        self._quiet_s = quiet_s
        self._ignored = frozenset(ignored)
        self._conditions: dict[str, dict[str, Condition]] = {}
        self._lock = threading.Lock()

    def event(self, event: GpuEvent, now: float | None = None, wall: float | None = None) -> bool:
        """Record an event; True when the GPU's taints changed."""
        if event.kind == "xid":
            if event.xid in self._ignored:
                return False
            key, value = f"{self._driver}/xid", str(event.xid)
            effect = NO_SCHEDULE if event.xid in FATAL_XIDS else INFORMATIONAL
        elif event.kind == "ecc-double-bit":
            key, value, effect = f"{self._driver}/ecc", "double-bit", NO_SCHEDULE
        else:
            return False
        now = time.monotonic() if now is None else now
        wall = time.time() if wall is None else wall
        with self._lock:
            conditions = self._conditions.setdefault(event.gpu_uuid, {})
            old = conditions.get(f"{key}={value}")
            conditions[f"{key}={value}"] = Condition(key, value, effect, old.since if old else wall, now)
            return old is None

    def recover(self, answering: Iterable[str], now: float | None = None) -> bool:
        """Clear the conditions of GPUs that answer NVML and had no new event for ``quiet_s``; True if any went."""
        now = time.monotonic() if now is None else now
        changed = False
        with self._lock:
            for uuid in set(answering) & set(self._conditions):
                kept = {k: c for k, c in self._conditions[uuid].items() if now - c.last_seen < self._quiet_s}
                if len(kept) != len(self._conditions[uuid]):
                    changed = True
                    self._conditions[uuid] = kept
        return changed

    def taints(self, uuid: str) -> tuple[DeviceTaint, ...]:
        with self._lock:
            conditions = sorted(self._conditions.get(uuid, {}).values(), key=lambda c: (c.key, c.value))
        return tuple(DeviceTaint(c.key, c.value, c.effect, _rfc3339(c.since)) for c in conditions)

    def unhealthy_reason(self, uuid: str) -> str:
        """Why the GPU must be reported Unhealthy ("" when it need not)."""
        return ", ".join(f"{t.key}={t.value}" for t in self.taints(uuid) if t.effect == NO_SCHEDULE)
