"""The mode-change part of ``dra-gpu explain``: the changes running on nodes, and what the mode controller's
planner would do now for the claims explained. Pure.

*Running* changes come from the NodeGpuModes objects: a GPU whose desired mode (spec) the kubelet plugin has not
reported as applied (status: other mode or layout, a state other than Applied, or a status older than the spec),
with the plugin's state and reason. The *plan* is ``controller.planner.decide`` on the same objects the
controller watches, with the policy given (the controller's defaults otherwise): for each claim explained,
whether a change would be made for it, it waits for a change in progress, the scheduler can place it already,
the controller cannot help (and why), or no pending pod waits for it (the controller acts for those only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api.errors import ConfigError
from controller.planner import Decision, Policy, World, decide
from controller.planner.view import ViewMemo
from controller.planner.world import node_modes
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.structured import parse_slice
from dra_driver.structured.model import Slice

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class RunningChange:
    node: str
    uuid: str
    desired: str  # "timeslice:4", "mig [3g.20gb, 2g.10gb]"
    observed: str  # what the GPU's slices publish now; "-" when the plugin has not reported the GPU
    state: str  # Applied | Pending | Refused | ResetRequired (api.gpumodes.STATES), or NotReported
    reason: str
    since: str  # lastTransitionTime of the state, "" when not reported


@dataclass(frozen=True)
class PlanFacts:
    claim: str
    verdict: str  # change | would-change | waiting | schedulable | cannot-help | too-recent | not-pending
    detail: str


@dataclass(frozen=True)
class ModesReport:
    running: tuple[RunningChange, ...]
    plan: tuple[PlanFacts, ...]
    notes: tuple[str, ...] = ()


def _mode(mode: object, layout: Sequence[str] | None) -> str:
    return f"{mode} [{', '.join(layout)}]" if layout else str(mode)


def running_changes(objects: Sequence[Obj]) -> tuple[tuple[RunningChange, ...], tuple[str, ...]]:
    """GPUs whose desired mode is not applied yet, node by node; notes name the objects that could not be read."""
    rows: list[RunningChange] = []
    notes: list[str] = []
    for obj in sorted(objects, key=lambda o: str((o.get("metadata") or {}).get("name"))):
        name = str((obj.get("metadata") or {}).get("name"))
        try:
            modes = node_modes([obj])[name]
        except ConfigError as exc:
            notes.append(f"NodeGpuModes {name}: {exc}")
            continue
        for want in modes.spec.gpus:
            if modes.in_flight(want.uuid) is None:
                continue
            got = modes.status.for_gpu(want.uuid)
            if got is None:
                observed, state, reason, since = "-", "NotReported", "the plugin has not reported this GPU", ""
            else:
                observed, state, since = _mode(got.mode, got.mig_layout), got.state, got.last_transition_time
                reason = got.reason or ""
                if state == "Applied":  # applied, but for an older spec than the one now desired
                    state, reason = "Pending", f"status is of generation {modes.status.observed_generation}"
                    reason += f", the spec is at {modes.generation}"
            rows.append(
                RunningChange(name, want.uuid, _mode(want.mode, want.mig_layout), observed, state, reason, since)
            )
    return tuple(rows), tuple(notes)


def plan_for(decision: Decision, claims: Sequence[str]) -> tuple[PlanFacts, ...]:
    """What ``decision`` means for each of ``claims`` (namespace/name)."""
    out = []
    for claim in claims:
        change = next((c for c in decision.changes if claim in c.claims), None)
        waiting = next((w for c, w in decision.waiting if c == claim), None)
        unhelped = next((u for u in decision.unhelped if u.claim == claim), None)
        if change is not None:
            verdict = "would-change" if decision.dry_run else "change"
            out.append(PlanFacts(claim, verdict, change.describe()))
        elif waiting is not None:
            out.append(PlanFacts(claim, "waiting", f"for the change in progress: {waiting}"))
        elif claim in decision.schedulable:
            out.append(PlanFacts(claim, "schedulable", "the scheduler can allocate it on the devices published now"))
        elif unhelped is not None:
            out.append(PlanFacts(claim, "cannot-help", f"{unhelped.why.text} [{unhelped.why}]"))
        elif claim in decision.young:
            out.append(PlanFacts(claim, "too-recent", "pending for less than pendingGraceSeconds: left alone for now"))
        else:
            detail = "no pending pod waits for it (the controller acts only for claims of pods not yet scheduled)"
            out.append(PlanFacts(claim, "not-pending", detail))
    return tuple(out)


def analyse(world: World, policy: Policy, now: float, claims: Sequence[str]) -> ModesReport:
    running, notes = running_changes(world.node_modes)
    plan = plan_for(decide(world, policy, now), claims) if claims else ()
    return ModesReport(running, plan, notes)


def world(
    nodes: Sequence[Obj],
    slices: Sequence[Obj],
    classes: Sequence[Obj],
    claims: Sequence[Obj],
    pods: Sequence[Obj],
    modes: Sequence[Obj],
    caps: Capabilities,
    driver: str,
    parse: Callable[[Obj], Slice] = parse_slice,
    views: ViewMemo | None = None,
) -> World:
    """The planner's input from the objects ``read_inputs`` read."""
    labels = {str(n["metadata"]["name"]): dict(n["metadata"].get("labels") or {}) for n in nodes}
    return World(labels, slices, classes, claims, pods, modes, caps, driver, parse, views)


def to_json(report: ModesReport) -> dict[str, Any]:
    return {
        "running": [vars(r) for r in report.running],
        "plan": [vars(p) for p in report.plan],
        "notes": list(report.notes),
    }


def table_lines(report: ModesReport) -> list[str]:
    out = ["", "mode changes in progress (NodeGpuModes spec vs status):"]
    if not report.running:
        out.append("  none")
    for r in report.running:
        since = f" since {r.since}" if r.since else ""
        why = f": {r.reason}" if r.reason else ""
        out.append(f"  {r.node} {r.uuid}: {r.observed} → {r.desired} {r.state}{since}{why}")
    if report.plan:
        out.append("mode controller, now:")
        out += [f"  {p.claim}: {p.verdict}: {p.detail}" for p in report.plan]
    out += [f"  note: {n}" for n in report.notes]
    return out
