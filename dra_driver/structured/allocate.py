"""Allocate claims on one node the way kube-scheduler's DynamicResources plugin would. Pure.

``allocate_claims`` = PreFilter's request/class checks + ``GatherPools`` + the "incubating" allocator's
search (see ``search``), with the scheduler's treatment of each failure: a missing class or a node that
cannot take the claims is ``Unsatisfiable``; errors that abort scheduling are ``Failed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dra_driver.errors import ConfigError
from dra_driver.structured.diagnose import diagnose
from dra_driver.structured.evaluate import ReportMemo
from dra_driver.structured.model import Claim, ClusterState, Node
from dra_driver.structured.outcome import Allocation, Failed, Outcome, Unsatisfiable
from dra_driver.structured.parse import parse_claim
from dra_driver.structured.pools import gather_pools
from dra_driver.structured.reasons import ClassNotFound
from dra_driver.structured.results import claim_allocation
from dra_driver.structured.search import Fatal, OutOfSteps, Search

ClaimInput = Claim | Mapping[str, Any]


def as_claims(claims: Sequence[ClaimInput]) -> tuple[Claim, ...]:
    return tuple([c if isinstance(c, Claim) else parse_claim(c) for c in claims])


def allocate(cluster: ClusterState, claim: ClaimInput, node: Node, *, max_steps: int | None = None) -> Outcome:
    """Allocate one claim on ``node``; see ``allocate_claims``."""
    return allocate_claims(cluster, [claim], node, max_steps=max_steps)


def allocate_claims(
    cluster: ClusterState,
    claims: Sequence[ClaimInput],
    node: Node,
    *,
    max_steps: int | None = None,
    reports: ReportMemo | None = None,
) -> Outcome:
    """Allocate all of a pod's unallocated claims together on ``node`` (the first solution found).

    ``max_steps`` bounds the search (the scheduler bounds it with a 10 s Filter timeout): when it runs
    out, the outcome is ``Failed`` like the scheduler's "timed out trying to allocate devices".
    ``reports``: where the per-request reports behind ``Unsatisfiable.reasons`` are left (``diagnose``).
    """
    parsed = as_claims(claims)
    if (early := precheck(cluster, parsed, node)) is not None:
        return early
    try:
        pools = gather_pools(cluster, node)
    except ConfigError as e:
        return Failed(node.name, f"gather pool information: {e}")
    search = Search(parsed, pools, cluster, node, max_steps)
    try:
        search.prepare()
        done = search.run()
        if done:
            results = search.results
            return Allocation(
                node.name, tuple([claim_allocation(c, results[i], node.name) for i, c in enumerate(parsed)])
            )
    except Fatal as e:
        return Failed(node.name, str(e))
    except OutOfSteps:
        return Failed(node.name, f"node {node.name}: timed out trying to allocate devices")
    reasons = diagnose(cluster, parsed, pools, node, max_steps, reports)
    if any(p.invalid is not None for p in pools):
        return Unsatisfiable(node.name, "invalid resource pools were encountered", reasons)
    return Unsatisfiable(node.name, "cannot allocate all claims", reasons)


def precheck(cluster: ClusterState, claims: Sequence[Claim], node: Node) -> Outcome | None:
    """PreFilter: every request names a class that exists (else the pod waits for it)."""
    for claim in claims:
        for request in claim.requests:
            if request.exactly is not None:
                alternatives = [(request.exactly, request.name)]
            elif request.first_available:
                alternatives = [(sub, f"{request.name}/{sub.name}") for sub in request.first_available]
            else:
                message = f"resource claim {claim.key}, request {request.name}: unknown request type"
                return Unsatisfiable(node.name, message)
            for device_request, name in alternatives:
                if not device_request.device_class:
                    return Failed(node.name, f"request {name}: unsupported request type")
                if device_request.device_class not in cluster.classes:
                    reason = ClassNotFound(name, device_request.device_class)
                    return Unsatisfiable(node.name, str(reason), (reason,))
    return None
