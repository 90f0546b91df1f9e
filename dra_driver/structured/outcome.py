"""What allocating claims on a node comes to: an Allocation, Unsatisfiable, or Failed. Pure.

- ``Allocation``: the first solution in the scheduler's search order, one ``ClaimAllocation`` per claim.
- ``Unsatisfiable``: the node cannot take the claims; the scheduler reports it "unschedulable" on that node
  (``message`` is its text, e.g. ``cannot allocate all claims``) and ``reasons`` says why in detail.
- ``Failed``: the scheduler aborts the attempt with an error for every node (a CEL error, a malformed claim,
  too many devices, ``All`` over an incomplete pool, …): nothing is allocated until the input changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dra_driver.structured.reasons import Reason


@dataclass(frozen=True)
class DeviceResult:
    request: str  # "request" or "request/subrequest"
    driver: str
    pool: str
    device: str
    admin_access: bool = False
    share_id: str | None = None
    consumed_capacity: Mapping[str, str] | None = None

    def to_api(self) -> dict[str, Any]:
        """As a v1 ``DeviceRequestAllocationResult``."""
        out: dict[str, Any] = {"request": self.request, "driver": self.driver, "pool": self.pool, "device": self.device}
        if self.admin_access:
            out["adminAccess"] = True
        if self.share_id is not None:
            out["shareID"] = self.share_id
        if self.consumed_capacity:
            out["consumedCapacity"] = dict(self.consumed_capacity)
        return out


@dataclass(frozen=True)
class ClaimAllocation:
    claim: str  # namespace/name
    results: tuple[DeviceResult, ...]
    node_selector: Mapping[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        """As a v1 ``AllocationResult`` (without device configuration)."""
        out: dict[str, Any] = {"devices": {"results": [r.to_api() for r in self.results]}}
        if self.node_selector is not None:
            out["nodeSelector"] = self.node_selector
        return out


@dataclass(frozen=True)
class Allocation:
    node: str
    claims: tuple[ClaimAllocation, ...]

    @property
    def results(self) -> tuple[DeviceResult, ...]:
        return tuple(r for c in self.claims for r in c.results)


@dataclass(frozen=True)
class Unsatisfiable:
    node: str
    message: str
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class Failed:
    node: str
    message: str


Outcome = Allocation | Unsatisfiable | Failed
