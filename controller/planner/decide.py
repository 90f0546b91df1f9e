"""The decision: which idle GPUs to put in which mode so that the most pending claims can be allocated. Pure.

1. Nodes whose NodeGpuModes ask for a change the plugin has not applied yet are looked at as they will be.
2. Pending units (a pod's unallocated claims, pending for at least ``pendingGraceSeconds``) are placed, oldest
   first, where the scheduler could place them on what is (or is about to be) published: those need no change
   (``schedulable``) or wait for a change in progress (``waiting``).
3. For the rest, every GPU of every node is a candidate in every mode the policy allows. A GPU holding an
   allocated claim (or one step 2 placed) is never one; neither is one in cooldown, one whose change is in
   flight, one on a node without the opt-in label, or a whole GPU the node must keep. Candidates are scored
   on the GPU alone (``estimate``), then the best are verified on their node by the allocator, next to the
   node's other devices and claims; the one serving the most units wins, ties going to the least disruption
   (no MIG mode toggle, fewest devices, then node and GPU order). Repeat until ``maxChangesPerInterval``.
4. Every unit left gets the most telling reason no candidate served it.

Oscillating demand cannot flap a GPU: it changes at most once per ``cooldownSeconds``, demand younger than
``pendingGraceSeconds`` is ignored, demand a change in flight will serve starts no second change, and only
unserved demand moves a GPU (nothing is ever changed back because it is idle).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace

from api.errors import ConfigError
from api.partitioning import Mig, Shared, TimeSlice, Whole
from controller.planner import world as w
from controller.planner.candidates import Target, targets, with_gpu
from controller.planner.decision import PRIORITY, Change, Decision, Unhelped, Why
from controller.planner.estimate import Estimator, signature
from controller.planner.policy import Policy
from controller.planner.sim import NodeSim, by_pool
from controller.planner.view import GpuView, NodeView, node_views
from dra_driver.structured import Allocation, allocated_state, cluster_state
from dra_driver.structured.model import PoolId, Slice
from dra_driver.structured.parse import collector_paused

VERIFY_PER_KIND = 8  # candidates of one kind verified per round before the next kind is tried


@dataclass(frozen=True)
class Candidate:
    node: str
    gpu: GpuView
    target: Target
    capacity: Mapping[str, int]  # per unit shape, how many the GPU alone would take (a bound for the node)

    def bound(self, left: Mapping[str, int]) -> int:
        return sum(min(n, left.get(shape, 0)) for shape, n in self.capacity.items())

    @property
    def disruption(self) -> tuple[int, int, str]:
        toggles = int(self.target.is_mig != self.gpu.mig_on)  # MIG mode on or off: a reset on Ampere
        match self.target.mode:
            case TimeSlice(replicas):
                devices = replicas
            case Mig():
                devices = len(self.target.layout) or 1
            case Whole() | Shared():
                devices = 1
        return toggles, devices, str(self.target)


class Planner:
    def __init__(self, world: w.World, policy: Policy, now: float) -> None:
        self.world, self.policy, self.now = world, policy, now
        self.notes: list[str] = []
        self.views = node_views(world.slices, world.driver, world.views)
        self.modes = self._read_modes()
        by_node: dict[str, list[Slice]] = {}
        unnamed: list[Slice] = []
        with collector_paused():  # a cluster's slices are millions of objects without cycles (parse.py)
            for raw in world.slices:
                parsed = world.parse(raw)
                (by_node.setdefault(parsed.node.node_name, []) if parsed.node.node_name else unnamed).append(parsed)
        self.classes = dict(cluster_state((), world.classes).classes)
        held = allocated_state(c for c in world.claims if w.allocated(c))
        self.sim = NodeSim(by_node, unnamed, self.classes, by_pool(held), world.nodes)
        self.in_flight: dict[tuple[str, str], Target] = {}
        self.changed: set[tuple[str, str]] = set()
        self.rate_limited: set[str] = set()  # unit shapes a change beyond the rate limit would serve
        self._pinned = False  # some selector names a UUID: no two nodes count as alike
        self._kinds: dict[str, object] = {}  # node -> its fingerprint's number, while nothing is placed on it
        self._kind_ids: dict[object, int] = {}

    def _read_modes(self) -> dict[str, w.NodeModes | None]:
        out: dict[str, w.NodeModes | None] = {}
        for obj in self.world.node_modes:
            name = str((obj.get("metadata") or {}).get("name"))
            try:
                out.update(w.node_modes([obj]))
            except ConfigError as exc:
                out[name] = None  # unreadable: its node is left alone
                self.notes.append(f"NodeGpuModes {name} is invalid ({exc}): its GPUs are not changed")
        return out

    # -- 1. changes in flight --------------------------------------------------------------------------------

    def _apply_in_flight(self) -> None:
        for node, modes in self.modes.items():
            view = self.views.get(node)
            if modes is None or view is None:
                continue
            for gpu in view.gpus:
                want = modes.in_flight(gpu.gpu.uuid)
                if want is None:
                    continue
                target = Target(want.mode, want.mig_layout or ())
                self.in_flight[(node, gpu.gpu.uuid)] = target
                if target != Target(gpu.mode, gpu.layout) and (slices := with_gpu(view, gpu, target, self.world.caps)):
                    self._switch(node, slices)

    def _switch(self, node: str, slices: list[w.Obj]) -> None:
        self.sim.replace_node(node, slices)
        old = self.views[node]
        self.views[node] = node_views(slices, old.driver)[node]

    # -- 2. what the scheduler can do already -------------------------------------------------------------------

    def _owner(self, node: str, alloc: Allocation) -> set[str]:
        view = self.views[node]
        names = {r.device for r in alloc.results if r.driver == view.driver and r.pool == view.pool}
        return {g.gpu.uuid for g in view.gpus if g.devices & names}

    def _fingerprint(self, node: str) -> object:
        """Nodes with equal fingerprints give a unit the same answer: the same GPUs (all but their UUIDs) in the
        same modes with the same devices held. Only this driver's slices are understood: a node with others
        (or with a selector naming a UUID somewhere) is its own kind."""
        if node in self._kinds:
            return self._kinds[node]
        view = self.views.get(node)
        if view is None or self._pinned or len(self.sim.slices(node)) != len(view.slices):
            return node
        held = self.sim.held(PoolId(view.driver, view.pool))
        gpus = tuple(
            (replace(g.gpu, uuid=""), g.mode_text, json.dumps(g.taints, sort_keys=True), g.devices & held)
            for g in view.gpus
        )
        kind = (view.driver_version, view.cuda_driver_version, gpus)
        self._kinds[node] = number = self._kind_ids.setdefault(kind, len(self._kind_ids))  # hashed once
        return number

    def _place_now(self, units: list[w.Unit]) -> tuple[list[w.Unit], list[str], list[tuple[str, str]]]:
        """Units placed, oldest first, where the scheduler could place them now. What is held only grows here, so
        a node (or a node alike) that cannot take a shape stays unable: each shape resumes where it last fit."""
        left, schedulable, waiting = [], [], []
        failed: dict[str, set[object]] = {}
        resume: dict[str, int] = {}
        nodes = sorted(self.world.nodes)
        self._pinned = any(
            "uuid" in json.dumps(o) for o in (*self.world.classes, *(c for u in units for c in u.claims))
        )
        for unit in units:
            tried = failed.setdefault(unit.shape, set())
            placed = None
            for at in range(resume.get(unit.shape, 0), len(nodes)):
                node = nodes[at]
                if not unit.admits(self.world.nodes[node]) or (kind := self._fingerprint(node)) in tried:
                    continue
                if (alloc := self.sim.place(node, unit.parsed)) is not None:
                    placed = node, alloc
                    resume[unit.shape] = at
                    self._kinds.pop(node, None)
                    break
                tried.add(kind)
            else:
                resume[unit.shape] = len(nodes)
            if placed is None:
                left.append(unit)
                continue
            node, alloc = placed
            flying = [u for u in self._owner(node, alloc) if (node, u) in self.in_flight] if node in self.views else []
            for claim in unit.claim_keys:
                if flying:
                    gpu = self.views[node].gpu(flying[0])
                    index = gpu.gpu.index if gpu else "?"
                    waiting.append(
                        (claim, f"{node} gpu-{index}: change to {self.in_flight[(node, flying[0])]} in progress")
                    )
                else:
                    schedulable.append(claim)
        return left, schedulable, waiting

    # -- 3. candidates -------------------------------------------------------------------------------------------

    def _busy(self, view: NodeView) -> set[str]:
        held = self.sim.held(PoolId(view.driver, view.pool))
        return {g.gpu.uuid for g in view.gpus if g.devices & held}

    def _blocked(self, view: NodeView, gpu: GpuView, busy: set[str]) -> Why | None:
        node, uuid = view.name, gpu.gpu.uuid
        if not self.policy.opted_in(self.world.nodes.get(node, {})) or self.modes.get(node, True) is None:
            return Why.NOT_OPTED_IN
        if uuid in busy:
            return Why.GPU_BUSY
        if (node, uuid) in self.in_flight:
            return Why.IN_FLIGHT
        modes = self.modes.get(node)
        last = modes.history.get(uuid) if modes else None
        if last is not None and self.now - last < self.policy.cooldown_s:
            return Why.COOLDOWN
        return None

    def _targets(self, view: NodeView, gpu: GpuView, estimator: Estimator) -> list[Target]:
        out = targets(gpu, self.world.caps, self.policy.modes, self.policy.timeslice_replicas)
        if "mig" in self.policy.modes and gpu.gpu.mig_capable and not self.world.caps.partitionable_devices:
            layout = estimator.static_layout(view, gpu)
            if layout and layout != gpu.layout:
                out.append(Target(Mig(), layout))
        return out

    def _keeps_whole(self, view: NodeView, gpu: GpuView, target: Target) -> bool:
        """Whether the node keeps minWholeGpusPerNode whole GPUs after this change."""
        if not isinstance(gpu.mode, Whole) or isinstance(target.mode, Whole):
            return True
        return sum(isinstance(g.mode, Whole) for g in view.gpus) - 1 >= self.policy.min_whole_gpus_per_node

    def _candidates(self, units: list[w.Unit], estimator: Estimator, seen: dict[str, set[Why]]) -> list[Candidate]:
        out = []
        memo: dict[tuple[object, ...], tuple[tuple[Target, dict[str, int]], ...]] = {}
        for node in sorted(self.views):
            view = self.views[node]
            labels = self.world.nodes.get(node)
            if labels is None:
                continue
            busy = self._busy(view)
            admitted = frozenset(u.shape for u in units if u.admits(labels))
            for gpu in view.gpus:
                key = (signature(view, gpu), gpu.mode_text, admitted)
                if key not in memo:  # alike GPUs of alike nodes: the same targets and capacities
                    pairs = ((t, estimator.capacity(view, gpu, t)) for t in self._targets(view, gpu, estimator))
                    memo[key] = tuple((t, {k: n for k, n in c.items() if k in admitted}) for t, c in pairs)
                block = self._blocked(view, gpu, busy)
                for target, capacity in memo[key]:
                    if not capacity:
                        continue
                    why = block or (None if self._keeps_whole(view, gpu, target) else Why.MIN_WHOLE)
                    if why is not None:
                        for shape in capacity:
                            seen.setdefault(shape, set()).add(why)
                        continue
                    out.append(Candidate(node, gpu, target, capacity))
        return out

    def _verify(
        self, cand: Candidate, units: list[w.Unit], left: set[int]
    ) -> tuple[list[w.Obj], list[tuple[int, Allocation]]]:
        view = self.views[cand.node]
        gpu = view.gpu(cand.gpu.gpu.uuid) or cand.gpu
        slices = with_gpu(view, gpu, cand.target, self.world.caps)
        if slices is None:
            return [], []
        names = {d["name"] for s in slices for d in s["spec"].get("devices") or ()}
        held = self.sim.held(PoolId(view.driver, view.pool))
        if not held <= names:  # never: the GPU is idle; kept as the guard it is
            return [], []
        trial = self.sim.fork(cand.node, slices)
        served, misfits = [], set()
        for i in sorted(left):
            shape = units[i].shape
            if shape not in cand.capacity or shape in misfits:
                continue
            if (alloc := trial.place(cand.node, units[i].parsed)) is not None:
                served.append((i, alloc))
            else:
                misfits.add(shape)
        return slices, served

    def _best(
        self, units: list[w.Unit], groups: Mapping[object, list[Candidate]], left: set[int]
    ) -> tuple[Candidate, list[w.Obj], list[tuple[int, Allocation]]] | None:
        """The candidate serving the most units once verified on its node; the least disruptive among equals."""
        counts = Counter(units[i].shape for i in left)
        ranked = sorted(
            (-(bound := members[0].bound(counts)), members[0].disruption, i, bound)
            for i, members in enumerate(groups.values())
            if members[0].bound(counts)
        )
        kinds = list(groups.values())
        best: tuple[Candidate, list[w.Obj], list[tuple[int, Allocation]]] | None = None
        for _, _, i, bound in ranked:
            tries = 0
            for cand in kinds[i]:
                if best is not None and bound <= len(best[2]):
                    return best
                if tries >= VERIFY_PER_KIND:
                    break
                if (cand.node, cand.gpu.gpu.uuid) in self.changed:
                    continue
                if not self._keeps_whole(self.views[cand.node], cand.gpu, cand.target):
                    continue
                tries += 1
                slices, served = self._verify(cand, units, left)
                if served and (best is None or len(served) > len(best[2])):
                    best = cand, slices, served
        return best

    def _choose(self, units: list[w.Unit], cands: list[Candidate], left: set[int]) -> list[Change]:
        recent = [
            t for m in self.modes.values() if m for t in m.history.values() if self.now - t < self.policy.interval_s
        ]
        allowed = self.policy.max_changes_per_interval - len(recent)
        groups: dict[object, list[Candidate]] = {}  # candidates alike but for node and GPU, in that order
        for c in cands:
            groups.setdefault((tuple(sorted(c.capacity.items())), c.disruption), []).append(c)
        changes: list[Change] = []
        while left and len(changes) < allowed:
            best = self._best(units, groups, left)
            if best is None:
                break
            cand, slices, served = best
            self._switch(cand.node, slices)
            for _, alloc in served:
                self.sim.keep(cand.node, alloc)
            left -= {i for i, _ in served}
            self.changed.add((cand.node, cand.gpu.gpu.uuid))
            claims = tuple(k for i, _ in served for k in units[i].claim_keys)
            changes.append(
                Change(cand.node, cand.gpu.gpu.index, cand.gpu.gpu.uuid, cand.gpu.mode_text, cand.target, claims)
            )
        if len(changes) >= allowed:
            self.rate_limited = {k for c in cands if (c.node, c.gpu.gpu.uuid) not in self.changed for k in c.capacity}
        return changes

    # -- the whole decision -----------------------------------------------------------------------------------

    def decide(self) -> Decision:
        self._apply_in_flight()
        all_units = w.pending_units(self.world.pods, self.world.claims)
        grace = self.policy.pending_grace_s
        units = [u for u in all_units if self.now - u.created >= grace]
        young = tuple(k for u in all_units if self.now - u.created < grace for k in u.claim_keys)
        units, schedulable, waiting = self._place_now(units)
        estimator = Estimator(units, self.classes, self.world.caps)
        seen: dict[str, set[Why]] = {}  # unit shape -> why candidates that would serve it were ruled out
        cands = self._candidates(units, estimator, seen)
        left = set(range(len(units)))
        changes = self._choose(units, cands, left)
        for shape in self.rate_limited:
            seen.setdefault(shape, set()).add(Why.RATE_LIMITED)
        unhelped = []
        for i in sorted(left):
            why = next((r for r in PRIORITY if r in seen.get(units[i].shape, set())), Why.NO_MODE)
            unhelped += [Unhelped(k, why) for k in units[i].claim_keys]
        return Decision(
            tuple(changes),
            tuple(schedulable),
            tuple(waiting),
            tuple(unhelped),
            young,
            tuple(self.notes),
            self.policy.dry_run,
        )


def decide(world: w.World, policy: Policy, now: float) -> Decision:
    """What to change now, and why; see the module docstring."""
    return Planner(world, policy, now).decide()


def history_after(history: Mapping[str, float], decision: Decision, node: str, now: float) -> dict[str, float]:
    """A node's change history once ``decision``'s changes on it are written."""
    out = dict(history)
    out.update({c.uuid: now for c in decision.changes if c.node == node})
    return out
