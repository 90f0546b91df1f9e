"""The controller's Prometheus metrics, in a registry of its own (docs/controller.md lists them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.planner import Decision, Why

P = "dra_gpu_controller"


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter(f"{P}_decisions", "Decisions made (one per reconcile while leading)", registry=r)
        self.decision_seconds = Histogram(f"{P}_decision_seconds", "Time to make one decision", registry=r)
        self.changes_applied = Counter(
            f"{P}_changes_applied", "GPU mode changes written to NodeGpuModes", ["mode"], registry=r
        )
        self.changes_planned = Counter(
            f"{P}_changes_planned", "GPU mode changes decided (also in dry-run)", ["mode"], registry=r
        )
        self.write_errors = Counter(f"{P}_write_errors", "NodeGpuModes writes that failed", registry=r)
        self.pending = Gauge(
            f"{P}_pending_claims",
            "Pending claims at the last decision, by what the controller does for them",
            ["state"],
            registry=r,
        )
        self.unhelped = Gauge(
            f"{P}_unhelped_claims", "Pending claims the controller cannot help, by reason", ["reason"], registry=r
        )
        self.leader = Gauge(f"{P}_leader", "1 while this replica holds the lease", registry=r)
        for why in Why:
            self.unhelped.labels(str(why))

    def observe(self, decision: Decision, seconds: float) -> None:
        self.decisions.inc()
        self.decision_seconds.observe(seconds)
        for change in decision.changes:
            self.changes_planned.labels(type(change.target.mode).__name__.lower()).inc()
        counts = {
            "changing": sum(len(c.claims) for c in decision.changes),
            "schedulable": len(decision.schedulable),
            "waiting": len(decision.waiting),
            "unhelped": len(decision.unhelped),
            "young": len(decision.young),
        }
        for state, n in counts.items():
            self.pending.labels(state).set(n)
        for why in Why:
            self.unhelped.labels(str(why)).set(sum(1 for u in decision.unhelped if u.why == why))
