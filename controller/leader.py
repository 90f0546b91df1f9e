"""Leader election on a ``coordination.k8s.io/v1`` Lease, so that of several controller replicas one acts.

The rules are client-go's: a replica takes the Lease when it is free (no holder) or when its record has not
changed for ``leaseDurationSeconds`` *as this replica observed it* (its own monotonic clock, never the other
replica's timestamps, so clock skew cannot hand the Lease over early); the holder renews it every
``renew_s``; every write carries the ``resourceVersion`` read, so of two replicas racing only one wins. A
holder that cannot renew within ``lease_s`` stops acting before another replica may take over: the lease is
counted from when its last successful renewal was *sent*, and a guard thread (``run``) clears ``leading`` when
it runs out even while a renewal hangs on an API server that does not answer. ``release`` (on SIGTERM) empties
the holder, so a successor need not wait out the lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dra_driver.k8s import ApiError, Kube, resource_path

log = logging.getLogger(__name__)


def micro_time(now: float | None = None) -> str:
    """A MicroTime as the API server writes it: RFC 3339 with microseconds."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_s: int = 15,
        renew_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.path = resource_path("coordination.k8s.io/v1", "leases", name, namespace=namespace)
        self.collection = resource_path("coordination.k8s.io/v1", "leases", namespace=namespace)
        self.name, self.namespace, self.identity = name, namespace, identity
        self.lease_s, self.renew_s, self.clock = lease_s, renew_s, clock
        self._observed: tuple[str, float] | None = None  # (record as last seen, when this replica saw it change)
        self._renewed_at: float | None = None  # when this replica last renewed successfully
        self.leading = threading.Event()

    def _spec(self, transitions: int, acquired: str | None) -> dict[str, Any]:
        now = micro_time()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_s,
            "acquireTime": acquired or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def step(self) -> bool:
        """One try to acquire or renew; whether this replica leads now."""
        sent = self.clock()
        try:
            leads = self._step()
        except ApiError as exc:
            log.warning("leader election: %s", exc)
            leads = False
        now = self.clock()
        if leads:
            self._renewed_at = sent
            leads = now - sent < self.lease_s  # an answer later than the lease itself: others may lead already
        elif self._renewed_at is not None and now - self._renewed_at < self.lease_s:
            leads = self.leading.is_set()  # a failed renewal: keep acting until the lease could have lapsed
        if leads != self.leading.is_set():
            log.info("leader election: %s the lease %s/%s", "holding" if leads else "lost", self.namespace, self.name)
            (self.leading.set if leads else self.leading.clear)()
        return leads

    def _step(self) -> bool:
        lease = self.kube.get(self.path)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(0, None),
            }
            try:
                self.kube.create(self.collection, body)
            except ApiError as exc:
                if exc.conflict:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = f"{holder}|{spec.get('renewTime')}|{spec.get('leaseTransitions')}"
        now = self.clock()
        if self._observed is None or self._observed[0] != record:
            self._observed = (record, now)
        duration = int(spec.get("leaseDurationSeconds") or self.lease_s)
        expired = now - self._observed[1] >= duration
        if holder and holder != self.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        acquired = spec.get("acquireTime") if holder == self.identity else None
        lease["spec"] = self._spec(transitions, acquired)
        try:
            self.kube.replace(self.path, lease)  # carries metadata.resourceVersion: a racing write conflicts
        except ApiError as exc:
            if exc.conflict:
                return False
            raise
        return True

    def lapse(self) -> bool:
        """Stop leading when the lease has run out since the last renewal sent; whether it did."""
        renewed = self._renewed_at
        if not self.leading.is_set() or renewed is None or self.clock() - renewed < self.lease_s:
            return False
        self.leading.clear()
        log.info("leader election: lease %s/%s ran out unrenewed: not acting", self.namespace, self.name)
        return True

    def run(self, stop: threading.Event) -> None:
        guard = threading.Thread(target=self._guard, args=(stop,), name="leader-guard", daemon=True)
        guard.start()
        while not stop.is_set():
            self.step()
            stop.wait(self.renew_s if self.leading.is_set() else self.renew_s / 2)
        guard.join(1)

    def _guard(self, stop: threading.Event) -> None:
        while not stop.wait(min(0.2, self.lease_s / 10)):
            self.lapse()

    def release(self) -> None:
        """Give the lease up (graceful shutdown), so another replica takes over at once."""
        if not self.leading.is_set():
            return
        self.leading.clear()
        try:
            lease = self.kube.get(self.path)
            if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"] = {**lease["spec"], "holderIdentity": "", "renewTime": micro_time()}
                self.kube.replace(self.path, lease)
        except ApiError as exc:
            log.warning("leader election: could not release the lease: %s", exc)
