"""Each request on its own against each device a node can use: the numbers behind an explanation. Pure.

A device is judged for one request in isolation, given only what already-allocated claims hold (not what
other requests of the same claims would take). The checks and their order follow the search: selectors,
in use, taints, capacity, counters. Devices of incomplete or invalid pools are not candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dra_driver.structured import counters
from dra_driver.structured.capacity import CapacityError, capacity_shortfall
from dra_driver.structured.matching import SelectionError, device_matches
from dra_driver.structured.model import ALL, Claim, ClusterState, Device, DeviceId, DeviceRequest, Node
from dra_driver.structured.pools import Pool
from dra_driver.structured.taints import untolerated

USABLE, NO_MATCH, ERROR, IN_USE, TAINTED, NO_CAPACITY, NO_COUNTERS = (
    "usable",
    "no-match",
    "error",
    "in-use",
    "tainted",
    "no-capacity",
    "no-counters",
)


@dataclass(frozen=True)
class DeviceStatus:
    device: DeviceId
    state: str  # one of the constants above
    detail: str = ""  # the error, the taints, the capacity that is short
    counters: tuple[tuple[str, str], ...] = ()  # (counter set, counter) with too little left


@dataclass(frozen=True)
class RequestReport:
    claim: str
    request: str  # "request" or "request/subrequest"
    device_class: str
    mode: str
    count: int  # ExactCount: devices wanted; All: the matching devices
    devices: tuple[DeviceStatus, ...]  # every device in usable pools on the node

    def number(self, state: str) -> int:
        return sum(1 for d in self.devices if d.state == state)

    @property
    def candidates(self) -> int:
        return len(self.devices)

    @property
    def matching(self) -> int:
        return sum(1 for d in self.devices if d.state not in (NO_MATCH, ERROR))

    @property
    def usable(self) -> int:
        return self.number(USABLE)

    @property
    def needed(self) -> int:
        return self.matching if self.mode == ALL else self.count

    @property
    def satisfiable(self) -> bool:
        """Could this request be allocated if it were alone (ignoring constraints)?"""
        if self.number(ERROR):
            return False
        return self.usable >= self.needed and (self.mode != ALL or self.needed > 0)

    def summary(self, node: str) -> str:
        """E.g. ``gpu: 2 needed; 3 of 4 matching devices usable on node-1 (1 in use)``."""
        parts = [f"{n} {label}" for label, n in self._blocked() if n]
        tail = f" ({', '.join(parts)})" if parts else ""
        wanted = "all matching" if self.mode == ALL else str(self.count)
        return (
            f"{self.request}: {wanted} needed; {self.usable} of {self.matching} matching devices usable on {node}{tail}"
        )

    def _blocked(self) -> list[tuple[str, int]]:
        return [
            ("in use", self.number(IN_USE)),
            ("taint not tolerated", self.number(TAINTED)),
            ("capacity exhausted", self.number(NO_CAPACITY)),
            ("counters exhausted", self.number(NO_COUNTERS)),
            ("selector error", self.number(ERROR)),
        ]


def request_report(
    cluster: ClusterState, pools: Sequence[Pool], node: Node, claim: Claim, request: DeviceRequest, name: str
) -> RequestReport:
    device_class = cluster.classes.get(request.device_class)
    statuses = []
    for pool in pools:
        if not pool.usable:
            continue
        left = counters.available(pool, cluster.allocated)
        for slice_ in pool.slices:
            for device in slice_.devices:
                device_id = DeviceId(pool.id.driver, pool.id.pool, device.name)
                try:
                    matches = device_class is not None and device_matches(
                        claim, device_class, request, slice_, device, device_id, node
                    )
                except SelectionError as e:
                    statuses.append(DeviceStatus(device_id, ERROR, str(e)))
                    continue
                status = (
                    _judge(cluster, pool, request, device, device_id, left)
                    if matches
                    else DeviceStatus(device_id, NO_MATCH)
                )
                statuses.append(status)
    statuses_t = tuple(statuses)
    count = request.count if request.mode != ALL else sum(1 for s in statuses_t if s.state not in (NO_MATCH, ERROR))
    return RequestReport(claim.key, name, request.device_class, request.mode, count, statuses_t)


def _judge(
    cluster: ClusterState,
    pool: Pool,
    request: DeviceRequest,
    device: Device,
    device_id: DeviceId,
    left: counters.Left,
) -> DeviceStatus:
    allocated = cluster.allocated
    if not request.admin_access and device_id in allocated.devices:
        return DeviceStatus(device_id, IN_USE)
    if taints := untolerated(device.taints, request.tolerations):
        return DeviceStatus(device_id, TAINTED, ", ".join(str(t) for t in taints))
    held = allocated.capacity.get(device_id, {})
    if request.capacity or held or not device.plain_capacity:  # else nothing can be short (as in search)
        try:
            short = capacity_shortfall(request.capacity, device.capacity, held, {})
        except CapacityError as e:
            return DeviceStatus(device_id, ERROR, f"checking capacity for device {device_id}: {e}")
        if short:
            return DeviceStatus(device_id, NO_CAPACITY, short)
    shared = device_id in allocated.capacity or device_id in allocated.shared_devices
    skip_counters = device.allow_multiple_allocations and shared
    if device.consumes_counters and not skip_counters:
        consumed: counters.Counts = {}
        counters.add(consumed, device.consumes_counters)
        # fits() looks only at the consumed counters (all of them when one is overdrawn): the same answer
        if not counters.fits(pool, allocated, consumed) and (short_counters := counters.exceeded(left, consumed)):
            return DeviceStatus(device_id, NO_COUNTERS, counters=tuple(short_counters))
    return DeviceStatus(device_id, USABLE)


ClaimReports = tuple[tuple[str, tuple[RequestReport, ...]], ...]
ReportMemo = dict[int, ClaimReports]  # claim index -> its reports, for one cluster, node and list of claims


def claim_reports(cluster: ClusterState, pools: Sequence[Pool], node: Node, claim: Claim) -> ClaimReports:
    """Per request of the claim: its name and one report per alternative (one for ``exactly``)."""
    out = []
    for request in claim.requests:
        alternatives: tuple[tuple[DeviceRequest, str], ...]
        if request.exactly is not None:
            alternatives = ((request.exactly, request.name),)
        else:
            alternatives = tuple((sub, f"{request.name}/{sub.name}") for sub in request.first_available)
        out.append(
            (request.name, tuple(request_report(cluster, pools, node, claim, r, name) for r, name in alternatives))
        )
    return tuple(out)
