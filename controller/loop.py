"""The controller's reconcile loop: cached cluster -> decision -> NodeGpuModes, Events, metrics.

Woken by any watched change (debounced by ``settle_s``) and at least every ``resync_s`` (timers run out:
claims leave their grace period, GPUs their cooldown; this reads the cache, not the API server). Only the
replica holding the lease decides and writes; a dry-run policy decides and records Events but writes no
NodeGpuModes.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from api.names import DEFAULT_DRIVER_NAME
from controller import handoff
from controller.cache import ClusterCache
from controller.events import EventRecorder
from controller.metrics import ControllerMetrics
from controller.planner import Decision, Policy, World, decide
from controller.planner.view import ViewMemo
from controller.planner.world import allocated, key
from dra_driver.k8s import Kube
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.structured.slicememo import ParsedSlices

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]


def world_of(cache: ClusterCache, caps: Capabilities, driver: str, parse: ParsedSlices, views: ViewMemo) -> World:
    nodes = {str(n["metadata"]["name"]): dict(n["metadata"].get("labels") or {}) for n in cache.items("nodes")}
    return World(
        nodes=nodes,
        slices=cache.items("slices"),
        classes=cache.items("classes"),
        claims=cache.items("claims"),
        pods=cache.items("pods"),
        node_modes=cache.items("modes"),
        caps=caps,
        driver=driver,
        parse=parse,
        views=views,
    )


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        policy: Policy,
        caps: Capabilities,
        metrics: ControllerMetrics,
        events: EventRecorder,
        leading: threading.Event,
        *,
        driver: str = DEFAULT_DRIVER_NAME,
        resync_s: float = 10.0,
        settle_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube, self.policy, self.caps, self.driver = kube, policy, caps, driver
        self.metrics, self.events, self.leading = metrics, events, leading
        self.resync_s, self.settle_s, self.clock = resync_s, settle_s, clock
        self.wake = threading.Event()
        self.cache = ClusterCache(kube, self.wake.set)
        self.parsed = ParsedSlices()  # slices parsed once per version, for decisions and explanations alike
        self.views = ViewMemo()  # and each node's GPUs read from its slices once per version of them
        self.last_pass = 0.0  # monotonic time of the last loop pass (liveness)
        self._last_summary: tuple[object, ...] = ()
        self._unsynced: list[str] = []
        self._frozen: set[str] = set()  # the start-up moments whose objects were frozen (``_freeze``)

    def reconcile(self) -> Decision:
        now = self.clock()
        world = world_of(self.cache, self.caps, self.driver, self.parsed, self.views)
        self.parsed.retain(world.slices)
        started = time.perf_counter()
        decision = decide(world, self.policy, now)
        self.metrics.observe(decision, time.perf_counter() - started)
        summary = (len(decision.changes), decision.schedulable, decision.waiting, decision.unhelped, decision.young)
        if summary != self._last_summary:  # what the controller thinks, once per change of mind
            self._last_summary = summary
            log.info(
                "decision: %d change(s), %d schedulable, %d waiting for a change, %d unhelped, %d young",
                *(len(x) if isinstance(x, tuple) else x for x in summary),
            )
        if "decided" not in self._frozen:
            self._freeze("decided")
        nodes = {c.node for c in decision.changes}
        written = nodes if self.policy.dry_run else self._write(decision, world, now)
        self._tell(decision, world, written)
        return decision

    def _freeze(self, moment: str) -> None:
        """Once the cache has listed (every replica) and once the first decision has parsed the slices (the
        leader), what is alive is moved out of the cyclic garbage collector's sight (``gc.freeze``): on a large
        cluster that is millions of objects without cycles (1000 MIG nodes: 219 MB of JSON), which every full
        collection would walk again. They are still freed by reference counting when the cluster drops them."""
        gc.collect()
        gc.freeze()
        self._frozen.add(moment)
        log.info("%s: %d objects frozen out of the garbage collector", moment, gc.get_freeze_count())

    def _write(self, decision: Decision, world: World, now: float) -> set[str]:
        existing = {str(o["metadata"]["name"]): o for o in world.node_modes}
        written = set()
        for node in sorted({c.node for c in decision.changes}):
            changes = [c for c in decision.changes if c.node == node]
            stored = handoff.write(self.kube, existing.get(node), node, changes, now)
            if stored is not None:
                self.cache.collections["modes"].put(stored)  # the next decision sees it in flight at once
                written.add(node)
                for c in changes:
                    self.metrics.changes_applied.labels(type(c.target.mode).__name__.lower()).inc()
                    log.info("%s", c.describe())
            else:
                self.metrics.write_errors.inc()
        return written

    def _tell(self, decision: Decision, world: World, written: set[str]) -> None:
        claims = {key(c): c for c in world.claims if not allocated(c)}
        verb = "would change" if decision.dry_run else "changing"
        for change in (c for c in decision.changes if c.node in written):
            for name in change.claims:
                if (claim := claims.get(name)) is not None:
                    self.events.claim(claim, "GpuModeChange", f"{verb} {change.describe()}")
        for name, change_text in decision.waiting:
            if (claim := claims.get(name)) is not None:
                self.events.claim(claim, "WaitingForGpuMode", change_text)
        for u in decision.unhelped:
            if (claim := claims.get(u.claim)) is not None:
                self.events.claim(claim, "CannotHelp", f"no GPU mode change helps: {u.why.text} ({u.why})", True)
        self.events.forget_except(str((c.get("metadata") or {}).get("uid")) for c in claims.values())

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.last_pass = time.monotonic()
            self.wake.wait(self.resync_s)
            if stop.is_set():
                break
            stop.wait(self.settle_s)  # let a burst of events land
            self.wake.clear()
            self.metrics.leader.set(1 if self.leading.is_set() else 0)
            if self.cache.synced and "listed" not in self._frozen:
                self._freeze("listed")
            if not self.leading.is_set() or not self.cache.synced:
                if self.leading.is_set() and (unsynced := self.cache.unsynced()) != self._unsynced:
                    self._unsynced = unsynced
                    log.info("leading, waiting for the cache to list %s", ", ".join(unsynced))
                continue
            try:
                self.reconcile()
            except Exception:  # a bug in one decision must not end the controller; the next pass retries
                log.exception("decision failed")
