"""What the planner decided, and why: changes, claims left to the scheduler, claims it cannot help. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from controller.planner.candidates import Target


class Why(StrEnum):
    """Why a pending claim gets no change (also the metric's ``reason`` label: a closed set)."""

    NO_MODE = "no-mode-fits"
    NOT_OPTED_IN = "node-not-opted-in"
    GPU_BUSY = "gpu-busy"
    IN_FLIGHT = "change-in-flight"
    COOLDOWN = "cooldown"
    MIN_WHOLE = "min-whole-gpus"
    RATE_LIMITED = "rate-limited"

    @property
    def text(self) -> str:
        return _TEXT[self]


_TEXT = {
    Why.NO_MODE: "no mode of any idle GPU on an opted-in node would let the scheduler allocate it",
    Why.NOT_OPTED_IN: "only GPUs on nodes without the opt-in label could serve it",
    Why.GPU_BUSY: "only GPUs that hold allocated claims could serve it (they are never changed)",
    Why.IN_FLIGHT: "only GPUs with a mode change still being applied could serve it",
    Why.COOLDOWN: "only GPUs changed within the cooldown could serve it",
    Why.MIN_WHOLE: "serving it would leave a node fewer whole GPUs than minWholeGpusPerNode",
    Why.RATE_LIMITED: "the change that would serve it exceeds maxChangesPerInterval; retried next interval",
}
# the most telling reason first, when several GPUs were ruled out for different reasons
PRIORITY = (Why.RATE_LIMITED, Why.IN_FLIGHT, Why.COOLDOWN, Why.MIN_WHOLE, Why.GPU_BUSY, Why.NOT_OPTED_IN, Why.NO_MODE)


@dataclass(frozen=True)
class Change:
    node: str
    gpu_index: int
    uuid: str
    current: str  # the mode published now
    target: Target
    claims: tuple[str, ...]  # namespace/name of the pending claims it is for

    def describe(self) -> str:
        n = len(self.claims)
        return f"{self.node} gpu-{self.gpu_index}: {self.current} → {self.target} for {n} pending claim{'s' * (n != 1)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "gpu": self.gpu_index,
            "uuid": self.uuid,
            "from": self.current,
            "to": str(self.target),
            "mode": str(self.target.mode),
            "migLayout": list(self.target.layout) or None,
            "claims": list(self.claims),
            "message": self.describe(),
        }


@dataclass(frozen=True)
class Unhelped:
    claim: str
    why: Why

    def to_json(self) -> dict[str, Any]:
        return {"claim": self.claim, "reason": str(self.why), "message": self.why.text}


@dataclass(frozen=True)
class Decision:
    changes: tuple[Change, ...] = ()
    schedulable: tuple[str, ...] = ()  # pending claims the scheduler can place on what is published now
    waiting: tuple[tuple[str, str], ...] = ()  # (claim, the change in progress that will serve it)
    unhelped: tuple[Unhelped, ...] = ()
    young: tuple[str, ...] = ()  # pending for less than pendingGraceSeconds: left alone for now
    notes: tuple[str, ...] = field(default=())
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "changes": [c.to_json() for c in self.changes],
            "schedulable": list(self.schedulable),
            "waiting": [{"claim": c, "change": w} for c, w in self.waiting],
            "unhelped": [u.to_json() for u in self.unhelped],
            "young": list(self.young),
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        out = [
            f"{'would change' if self.dry_run else 'change'}: {c.describe()} ({', '.join(c.claims)})"
            for c in self.changes
        ]
        out += [f"waiting: {c} ({w})" for c, w in self.waiting]
        out += [f"schedulable now: {c}" for c in self.schedulable]
        out += [f"cannot help: {u.claim}: {u.why.text} [{u.why}]" for u in self.unhelped]
        out += [f"too recent to act on: {c}" for c in self.young]
        out += [f"note: {n}" for n in self.notes]
        return out or ["nothing pending: no change"]
