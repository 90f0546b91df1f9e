"""Why did the search find nothing? Turn per-request reports into reasons. Pure.

1. A request none of whose alternatives could be satisfied even alone: say why (no match, in use, taints,
   capacity, counters, selector errors).
2. Otherwise the requests only fail together: retry without each constraint in turn and name those whose
   removal makes the claims fit. Failing that, the requests compete for devices or counters.
Pools that are incomplete or invalid are always mentioned: their devices were not considered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from dra_driver.structured.evaluate import (
    ERROR,
    IN_USE,
    NO_CAPACITY,
    NO_COUNTERS,
    TAINTED,
    ReportMemo,
    RequestReport,
    claim_reports,
)
from dra_driver.structured.model import Claim, ClusterState, Node
from dra_driver.structured.pools import Pool
from dra_driver.structured.reasons import (
    CapacityExhausted,
    ConstraintNotSatisfied,
    CountersExhausted,
    DevicesContended,
    DevicesInUse,
    IncompletePool,
    InvalidPool,
    NoMatchingDevice,
    NotEnoughDevices,
    Reason,
    SelectorError,
    TaintsNotTolerated,
)
from dra_driver.structured.search import Fatal, OutOfSteps, Search


def diagnose(
    cluster: ClusterState,
    claims: Sequence[Claim],
    pools: Sequence[Pool],
    node: Node,
    max_steps: int | None = None,
    reports: ReportMemo | None = None,
) -> tuple[Reason, ...]:
    """``reports``: claim index -> its ``claim_reports``, filled in here, so a caller that needs them too
    (``explain``) does not judge every device again."""
    memo: ReportMemo = {} if reports is None else reports
    pool_notes: list[Reason] = []
    for pool in pools:
        if pool.incomplete:
            pool_notes.append(IncompletePool(str(pool.id), pool.seen, pool.expected))
        elif pool.invalid is not None:
            pool_notes.append(InvalidPool(str(pool.id), pool.invalid))
    found: list[Reason] = []
    names: list[str] = []
    for ci, claim in enumerate(claims):
        if ci not in memo:
            memo[ci] = claim_reports(cluster, pools, node, claim)
        for name, alternatives in memo[ci]:
            names.append(name)
            if not any(r.satisfiable for r in alternatives):
                for report in alternatives:
                    found += request_reasons(report)
    if not found:
        found = _blocking_constraints(cluster, claims, pools, node, max_steps) or [DevicesContended(tuple(names))]
    return tuple(found + pool_notes)


def _fits(
    cluster: ClusterState, claims: Sequence[Claim], pools: Sequence[Pool], node: Node, max_steps: int | None
) -> bool:
    search = Search(claims, pools, cluster, node, max_steps)
    try:
        search.prepare()
        return search.run()
    except (Fatal, OutOfSteps):
        return False


def request_reasons(report: RequestReport) -> list[Reason]:
    name = report.request
    errors = [d.detail for d in report.devices if d.state == ERROR]
    if errors:
        return [SelectorError(name, errors[0])]
    if report.matching == 0:
        return [NoMatchingDevice(name, report.candidates)]
    out: list[Reason] = [NotEnoughDevices(name, report.needed, report.usable, report.matching)]
    if in_use := report.number(IN_USE):
        out.append(DevicesInUse(name, in_use))
    tainted = [d for d in report.devices if d.state == TAINTED]
    if tainted:
        taints = tuple(sorted({t for d in tainted for t in d.detail.split(", ")}))
        out.append(TaintsNotTolerated(name, len(tainted), taints))
    short = [d for d in report.devices if d.state == NO_CAPACITY]
    if short:
        out.append(CapacityExhausted(name, len(short), short[0].detail))
    by_set: dict[tuple[str, str], tuple[set[str], int]] = {}
    for d in report.devices:
        if d.state != NO_COUNTERS:
            continue
        pool = f"{d.device.driver}/{d.device.pool}"
        for counter_set, counter in d.counters:
            names, n = by_set.get((pool, counter_set), (set(), 0))
            by_set[(pool, counter_set)] = (names | {counter}, n)
        for key in {(pool, cs) for cs, _ in d.counters}:
            names, n = by_set[key]
            by_set[key] = (names, n + 1)
    for (pool, counter_set), (counter_names, n) in sorted(by_set.items()):
        out.append(CountersExhausted(name, pool, counter_set, tuple(sorted(counter_names)), n))
    return out


def _blocking_constraints(
    cluster: ClusterState, claims: Sequence[Claim], pools: Sequence[Pool], node: Node, max_steps: int | None
) -> list[Reason]:
    out: list[Reason] = []
    for ci, claim in enumerate(claims):
        for k, constraint in enumerate(claim.constraints):
            relaxed = list(claims)
            relaxed[ci] = replace(claim, constraints=claim.constraints[:k] + claim.constraints[k + 1 :])
            if _fits(cluster, relaxed, pools, node, max_steps):
                out.append(ConstraintNotSatisfied(f"claim {claim.key}: {constraint.describe(k)}"))
    return out
