"""Could any device ever satisfy a request? Each request is allocated alone, with our port of the
scheduler's allocator, on an empty cluster made of given ResourceSlices (a simulated machine's, per mode,
or a cluster's current ones, ignoring what is allocated now). Pure.

An ``Environment`` is a set of alternatives (``Target``s): the modes a machine could be put in, or one
cluster. A request is reported when it fits on no node of any target. With ``whole_claims`` a claim whose
requests each fit is also allocated as a whole (constraints, requests competing for devices).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import api.errors
from cli.lint.findings import Issue
from cli.lint.objects import Manifest, Request
from dra_driver.structured import (
    Allocation,
    ClusterState,
    DeviceId,
    Failed,
    Node,
    Reason,
    allocate,
    cluster_state,
    explain,
)
from dra_driver.structured.reasons import NoMatchingDevice

MAX_STEPS = 200_000  # a search that runs longer is inconclusive, not a finding
INCONCLUSIVE = "inconclusive"
Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    label: str  # "whole", "mig", "timeslice:64", "cluster"
    slices: tuple[Obj, ...]
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Environment:
    description: str  # "profile dgx-a100 (mode mig)", "the cluster"
    targets: tuple[Target, ...]
    whole_claims: bool = True


@dataclass(frozen=True)
class _Prepared:
    target: Target
    state: ClusterState
    types: Mapping[DeviceId, str]  # the driver's devices by their ``type`` attribute (gpu, mig, ...)


def device_types(slices: Sequence[Obj], driver: str) -> dict[DeviceId, str]:
    out = {}
    for s in slices:
        spec = s.get("spec") or {}
        if spec.get("driver") != driver:
            continue
        pool = str((spec.get("pool") or {}).get("name", ""))
        for device in spec.get("devices") or ():
            attributes = device.get("attributes") or {}
            kind = (attributes.get("type") or attributes.get(f"{driver}/type") or {}).get("string")
            if kind:
                out[DeviceId(driver, pool, str(device["name"]))] = str(kind)
    return out


def class_probe(name: str) -> dict[str, Any]:
    """A claim for one device of class ``name`` (request ``probe``)."""
    request = {"name": "probe", "exactly": {"deviceClassName": name}}
    return {"metadata": {"name": "lint", "namespace": "default"}, "spec": {"devices": {"requests": [request]}}}


class Evaluator:
    """Evaluates manifests against one environment; the cluster state per target is built once."""

    def __init__(self, environment: Environment, classes: Mapping[str, Obj], driver: str) -> None:
        self.environment = environment
        self.classes = classes
        self._prepared = tuple(
            _Prepared(t, cluster_state(t.slices, classes), device_types(t.slices, driver)) for t in environment.targets
        )

    def matching_types(self, claim: Obj, request: str) -> set[str]:
        """The types of this driver's devices that match ``request`` (``name`` or ``name/sub``) on any node."""
        types: set[str] = set()
        for prepared in self._prepared:
            for node in prepared.target.nodes:
                try:
                    reports = explain(prepared.state, claim, node, max_steps=MAX_STEPS).requests
                except api.errors.ConfigError:
                    continue
                for report in reports:
                    if report.request == request:
                        matching = (d.device for d in report.devices if d.state not in ("no-match", "error"))
                        types.update(prepared.types[d] for d in matching if d in prepared.types)
        return types

    def class_issues(self, m: Manifest) -> list[Issue]:
        """A DeviceClass that matches no device of the environment."""
        verdicts = self._verdicts(class_probe(m.name))
        if verdicts is None:
            return []
        why = self._why(verdicts, "request probe: ")
        return [Issue("feasibility", "spec.selectors", f"selects no device of {self.scope}: {why}")]

    def request_issues(self, m: Manifest, skip: Sequence[str]) -> list[Issue]:
        """Requests nothing could satisfy, then (if they all can) the claim as a whole."""
        issues: list[Issue] = []
        checked: list[Request] = []
        for request in m.requests:
            if not request.alternatives or any(_under(p, request.path) for p in skip):
                continue
            if any(a.device_class not in self.classes for a in request.alternatives):
                continue
            checked.append(request)
            verdicts = self._verdicts(m.claim_v1(only=request))
            if verdicts is not None:
                why = self._why(verdicts, f"request {request.name}: ")
                message = f"no device of {self.scope} can ever satisfy this request: {why}"
                issues.append(Issue("feasibility", request.path, message))
        whole = self.environment.whole_claims and not issues and not skip and len(checked) == len(m.requests)
        if whole and (len(checked) > 1 or m.devices.get("constraints")):
            verdicts = self._verdicts(m.claim_v1())
            if verdicts is not None:
                issues.append(
                    Issue(
                        "feasibility",
                        f"{m.claim_path}.devices",
                        f"each request fits alone, but the claim as a whole fits no node of {self.scope}: "
                        + self._why(verdicts, ""),
                    )
                )
        return issues

    @property
    def scope(self) -> str:
        env = self.environment
        return f"{env.description} in any mode" if len(env.targets) > 1 else env.description

    @staticmethod
    def _why(verdicts: Sequence[tuple[str, str]], redundant: str) -> str:
        """The reasons without the allocator's ``request X: `` prefix; targets with the same reason grouped."""
        grouped: dict[str, list[str]] = {}
        for label, why in verdicts:
            grouped.setdefault(why.replace(redundant, "") if redundant else why, []).append(label)
        if len(grouped) == 1:
            return next(iter(grouped))  # the same in every mode
        return "; ".join(f"[{', '.join(labels)}] {why}" for why, labels in grouped.items())

    def _verdicts(self, claim: Obj) -> list[tuple[str, str]] | None:
        """Why ``claim`` fits no target (one reason per target), or ``None`` if it fits one or we cannot tell."""
        out = []
        for prepared in self._prepared:
            why = _on_target(prepared, claim)
            if why is None or why == INCONCLUSIVE:
                return None
            out.append((prepared.target.label, why))
        return out


def _text(reason: Reason) -> str:
    """A reason as the allocator says it, but without numbers that differ between modes for the same cause."""
    if isinstance(reason, NoMatchingDevice) and reason.candidates:
        return f"request {reason.request}: no device matches the class and request selectors"
    return str(reason)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((f"{prefix}.", f"{prefix}["))


def _on_target(prepared: _Prepared, claim: Obj) -> str | None:
    nodes = prepared.target.nodes
    reasons: list[str] = []
    for node in nodes:
        try:
            outcome = allocate(prepared.state, claim, node, max_steps=MAX_STEPS)
        except api.errors.ConfigError:
            return INCONCLUSIVE  # input the allocator cannot read; the structural checks report it
        match outcome:
            case Allocation():
                return None
            case Failed(message=message):
                if "timed out" in message:
                    return INCONCLUSIVE
                reasons.append(f"{node.name}: {message}" if len(nodes) > 1 else message)
            case _:
                why = "; ".join(_text(r) for r in outcome.reasons) or outcome.message
                reasons.append(f"{node.name}: {why}" if len(nodes) > 1 else why)
    if not nodes:
        return "no nodes"
    if len(reasons) > 3:
        reasons = [*reasons[:3], f"... and {len(reasons) - 3} more nodes"]
    return " | ".join(reasons)
