"""Explain a claim on a node: the outcome plus the numbers behind it, for a CLI to print. Pure.

``explain`` runs ``allocate_claims`` and, independently, judges every device of every usable pool for each
request (``evaluate``), so a user can read e.g. "gpu: 1 needed; 0 of 4 matching devices usable on node-1
(3 in use, 1 counters exhausted)" and which counters of which counter set ran out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dra_driver.cel import Quantity
from dra_driver.errors import ConfigError
from dra_driver.structured import counters
from dra_driver.structured.allocate import ClaimInput, allocate_claims, as_claims
from dra_driver.structured.evaluate import ReportMemo, RequestReport, claim_reports
from dra_driver.structured.model import Claim, ClusterState, Node
from dra_driver.structured.outcome import Allocation, Failed, Outcome, Unsatisfiable
from dra_driver.structured.pools import gather_pools


@dataclass(frozen=True)
class PoolReport:
    pool: str
    usable: bool
    incomplete: bool
    invalid: str | None
    seen: int  # slices of the current generation
    expected: int  # resourceSliceCount
    devices: int  # devices the node sees in the pool
    counters_left: Mapping[str, Mapping[str, Quantity]]  # after already-allocated claims


@dataclass(frozen=True)
class Explanation:
    node: str
    outcome: Outcome
    pools: tuple[PoolReport, ...]
    requests: tuple[RequestReport, ...]

    def lines(self) -> list[str]:
        out = [_headline(self.outcome)]
        for pool in self.pools:
            state = "usable" if pool.usable else ("incomplete" if pool.incomplete else f"invalid: {pool.invalid}")
            out.append(f"pool {pool.pool}: {pool.devices} devices, {pool.seen}/{pool.expected} slices, {state}")
        out += [report.summary(self.node) for report in self.requests]
        if isinstance(self.outcome, Unsatisfiable):
            out += [f"- {reason}" for reason in self.outcome.reasons]
        return out


def _headline(outcome: Outcome) -> str:
    match outcome:
        case Allocation(node=node, claims=claims):
            devices = ", ".join(f"{r.request}={r.pool}/{r.device}" for c in claims for r in c.results)
            return f"allocatable on {node}: {devices}"
        case Unsatisfiable(node=node, message=message):
            return f"not allocatable on {node}: {message}"
        case Failed(node=node, message=message):
            return f"scheduling fails ({node}): {message}"


def explain(
    cluster: ClusterState,
    claims: ClaimInput | Sequence[ClaimInput],
    node: Node,
    *,
    max_steps: int | None = None,
    outcome: Outcome | None = None,
    reports: ReportMemo | None = None,
) -> Explanation:
    """``outcome``: what ``allocate_claims`` gave for the same inputs, when the caller has it already, and
    ``reports`` the memo it was given (the requests judged while finding the reasons are not judged again)."""
    parsed = as_claims([claims] if isinstance(claims, (Claim, Mapping)) else claims)
    memo: ReportMemo = {} if reports is None else reports
    if outcome is None:
        outcome = allocate_claims(cluster, parsed, node, max_steps=max_steps, reports=memo)
    try:
        pools = gather_pools(cluster, node)
    except ConfigError:
        return Explanation(node.name, outcome, (), ())
    pool_reports = tuple(
        PoolReport(
            pool=str(p.id),
            usable=p.usable,
            incomplete=p.incomplete,
            invalid=p.invalid,
            seen=p.seen,
            expected=p.expected,
            devices=sum(len(s.devices) for s in p.slices),
            counters_left={
                name: {c: Quantity(v) for c, v in left.items()}
                for name, left in counters.available(p, cluster.allocated).items()
            },
        )
        for p in pools
    )
    for ci, claim in enumerate(parsed):
        if ci not in memo:
            memo[ci] = claim_reports(cluster, pools, node, claim)
    requests = tuple(report for ci in range(len(parsed)) for _, alternatives in memo[ci] for report in alternatives)
    return Explanation(node.name, outcome, pool_reports, requests)
