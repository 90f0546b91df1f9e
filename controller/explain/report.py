"""What ``dra-gpu explain`` reports, and its two renderings (table, JSON). Pure."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass

from controller.explain.modes import ModesReport, table_lines, to_json


@dataclass(frozen=True)
class RequestFacts:
    claim: str
    request: str
    device_class: str
    needed: int
    matching: int
    usable: int
    blocked: Mapping[str, int]  # "in use" / "taint" / "capacity" / "counters" / "error" -> devices
    free_placements: Mapping[str, Mapping[int, tuple[int, ...]]] | None  # MIG profile -> GPU index -> starts


@dataclass(frozen=True)
class NodeReport:
    node: str
    verdict: str  # allocatable | unschedulable | error
    message: str
    reasons: tuple[str, ...]
    fits: tuple[str, ...]
    devices: tuple[str, ...]  # "claim request=device" when allocatable
    requests: tuple[RequestFacts, ...]


@dataclass(frozen=True)
class Report:
    subject: str
    claims: tuple[str, ...]
    notes: tuple[str, ...]
    nodes: tuple[NodeReport, ...]
    skipped: int  # nodes that were not candidates
    modes: ModesReport | None = None  # mode changes running, and the mode controller's plan (controller.explain.modes)

    @property
    def summary(self) -> str:
        if not self.claims:
            return "nothing to explain: no unallocated claim"
        if not self.nodes:
            return f"no candidate node ({self.skipped} skipped)"
        good = sum(1 for n in self.nodes if n.verdict == "allocatable")
        if good:
            return f"allocatable on {good} of {len(self.nodes)} node(s)"
        return f"not allocatable on any of {len(self.nodes)} node(s)"


def render_table(report: Report) -> str:
    out = [f"{report.subject}: {report.summary}"]
    out += [f"  {note}" for note in report.notes]
    if not report.nodes:
        return "\n".join(out + _modes_lines(report)) + "\n"
    rows: list[tuple[str, str, list[str]]] = []
    for n in report.nodes:
        detail = list(n.devices) if n.verdict == "allocatable" else [*n.reasons, *(f"fits: {f}" for f in n.fits)]
        rows.append((n.node, n.verdict, detail or [n.message]))
    width_node = max(len("NODE"), *(len(r[0]) for r in rows))
    width_verdict = max(len("RESULT"), *(len(r[1]) for r in rows))
    out.append("")
    out.append(f"{'NODE':<{width_node}}  {'RESULT':<{width_verdict}}  DETAIL")
    for node, verdict, detail in rows:
        for i, line in enumerate(detail):
            first = (node, verdict) if i == 0 else ("", "")
            out.append(f"{first[0]:<{width_node}}  {first[1]:<{width_verdict}}  {line}".rstrip())
    if report.skipped:
        out.append(f"({report.skipped} other node(s) are not candidates)")
    return "\n".join(out + _modes_lines(report)) + "\n"


def _modes_lines(report: Report) -> list[str]:
    return table_lines(report.modes) if report.modes is not None else []


def render_json(report: Report) -> str:
    data = dataclasses.asdict(report)
    data["summary"] = report.summary
    data["modes"] = to_json(report.modes) if report.modes is not None else None
    return json.dumps(data, indent=2) + "\n"
