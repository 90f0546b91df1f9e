"""A finished search → allocation results, with the node selector the scheduler would write. Pure.

Port of the result half of ``Allocate`` and of ``createNodeSelector``: a device on a named node (or one that
binds to its node) pins the claim to this node by ``metadata.name``; otherwise the single-term node selectors
of the slices (or devices) are merged; devices for all nodes need none. Device configuration is not copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dra_driver.structured.model import Claim
from dra_driver.structured.outcome import ClaimAllocation, DeviceResult
from dra_driver.structured.search_types import Chosen, Fatal

_new = object.__new__


def claim_allocation(claim: Claim, chosen: Sequence[Chosen], node_name: str) -> ClaimAllocation:
    # The frozen results are built with their fields set at once rather than through their __init__ (which
    # sets them one by one through object.__setattr__): a result per node and claim, in every Filter pass.
    results = []
    for c in chosen:
        device_id, result = c.candidate.id, _new(DeviceResult)
        result.__dict__.update(
            request=c.request,
            driver=device_id.driver,
            pool=device_id.pool,
            device=device_id.device,
            admin_access=c.admin_access,
            share_id=c.share_id,
            consumed_capacity={k: str(v) for k, v in c.consumed.items()} if c.consumed else None,
        )
        results.append(result)
    allocation = _new(ClaimAllocation)
    allocation.__dict__.update(claim=claim.key, results=tuple(results), node_selector=node_selector(chosen, node_name))
    return allocation


def node_selector(chosen: Sequence[Chosen], node_name: str) -> dict[str, Any] | None:
    fields: list[dict[str, Any]] = []
    expressions: list[dict[str, Any]] = []
    for c in chosen:
        device, slice_ = c.candidate.device, c.candidate.slice
        selection = device.node if slice_.node.per_device and device.node is not None else slice_.node
        if selection.node_name or device.binds_to_node:
            return {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
                ]
            }
        if selection.node_selector is None:
            continue
        terms = selection.node_selector.get("nodeSelectorTerms") or []
        if len(terms) > 1:
            raise Fatal(f"create NodeSelector: unsupported ResourceSlice.NodeSelector with {len(terms)} terms")
        if terms:
            _merge(terms[0].get("matchFields") or [], fields)
            _merge(terms[0].get("matchExpressions") or [], expressions)
    if not fields and not expressions:
        return None
    term: dict[str, Any] = {}
    if expressions:
        term["matchExpressions"] = expressions
    if fields:
        term["matchFields"] = fields
    return {"nodeSelectorTerms": [term]}


def _merge(new: Sequence[dict[str, Any]], into: list[dict[str, Any]]) -> None:
    for requirement in new:
        values = set(requirement.get("values") or ())
        if not any(
            r.get("key") == requirement.get("key")
            and r.get("operator") == requirement.get("operator")
            and set(r.get("values") or ()) == values
            for r in into
        ):
            into.append(dict(requirement))
