"""First-fit depth-first search with backtracking: port of the "incubating" allocator's ``Allocate``.

The search state is mutable but private to one ``Search``; inputs and results are frozen. The order is the
scheduler's: claims, their requests (a ``firstAvailable`` request tries its subrequests in order), then for
each device needed: pools (driver, pool name), slices (name), devices (as listed), continuing within a
request after the previously chosen device so that each *set* of devices is tried once. Per candidate:
in use? → selectors → capacity → counters → taints → constraints. ``All`` requests fix their device list
up front. Ported from k8s.io/dynamic-resource-allocation v0.37.2 (Kubernetes 1.37.2), which rolls every
rejected or abandoned candidate back completely (counters, constraints, capacity; kubernetes#140431).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from dra_driver.cel import Quantity
from dra_driver.structured import counters
from dra_driver.structured.capacity import CapacityError, capacity_shortfall, consumed_capacity
from dra_driver.structured.constraints import ConstraintState, constraint_state
from dra_driver.structured.matching import SelectionError, device_matches
from dra_driver.structured.model import (
    ALL,
    EXACT_COUNT,
    MAX_RESULTS_PER_CLAIM,
    Claim,
    ClusterState,
    Device,
    DeviceId,
    DeviceRequest,
    Node,
    PoolId,
    Slice,
)
from dra_driver.structured.pools import Pool
from dra_driver.structured.rollback import Rollback, insert
from dra_driver.structured.search_types import Candidate, Chosen, Fatal, Key, OutOfSteps, RequestData
from dra_driver.structured.taints import untolerated

__all__ = ["Candidate", "Chosen", "Fatal", "OutOfSteps", "RequestData", "Search"]


_PLANS_LIMIT = 256  # lists of claims whose checked requests a ClusterState remembers


class _MaxSize(Exception):
    """``errAllocationResultMaxSizeExceeded``: more than 32 results; backtrack harder."""


class Search:
    """One search for ``claims`` on ``node`` over its ``pools``; ``results`` holds the devices chosen per claim."""

    def __init__(
        self,
        claims: Sequence[Claim],
        pools: Sequence[Pool],
        cluster: ClusterState,
        node: Node,
        max_steps: int | None = None,
    ) -> None:
        self.claims, self.pools, self.cluster, self.node, self.max_steps = claims, pools, cluster, node, max_steps
        self.steps = 0
        self.held = cluster.allocated.devices  # held exclusively by allocated claims
        self.data: dict[Key, RequestData] = {}
        self.constraints: list[list[ConstraintState]] = []
        self.results: list[list[Chosen]] = []
        self.allocating: dict[DeviceId, set[int]] = {}
        self.allocating_capacity: dict[DeviceId, dict[str, Quantity]] = {}
        self.consumed_counters: dict[PoolId, counters.Counts] = {}
        # (device, request key) -> is it selectable; a valid pool's devices are distinct objects with distinct IDs
        self.match_cache: dict[tuple[Device, Key], bool] = {}

    # --- set-up (``Allocate`` before the recursion) -------------------------------------------------

    def prepare(self) -> None:
        plans = self.cluster.search_plans
        key = tuple(map(id, self.claims))
        plan = plans.get(key)
        if plan is not None:  # these claims passed on another node; their requests are the same
            self.data = dict(plan[1])
            for claim in self.claims:
                self.constraints.append([constraint_state(c) for c in claim.constraints])
                self.results.append([])
            return
        self._prepare()
        # Only ``exactly`` requests with a count: nothing the search does changes their RequestData (a
        # firstAvailable request records its choice in it, an All request the devices of this node's pools).
        if all(r.exactly is not None and r.exactly.mode == EXACT_COUNT for c in self.claims for r in c.requests):
            if len(plans) >= _PLANS_LIMIT:
                plans.clear()
            plans[key] = (tuple(self.claims), dict(self.data))

    def _prepare(self) -> None:
        for ci, claim in enumerate(self.claims):
            minimum = 0
            for ri, request in enumerate(claim.requests):
                if request.first_available:
                    needed = min(
                        self._validate(sub, request.name, (ci, ri, si)).num_devices
                        for si, sub in enumerate(request.first_available)
                    )
                elif request.exactly is not None:
                    needed = self._validate(request.exactly, None, (ci, ri, 0)).num_devices
                else:
                    raise Fatal(f"claim {claim.key}, request {request.name}: unknown request type")
                if needed > MAX_RESULTS_PER_CLAIM - minimum:
                    raise Fatal(
                        f"claim {claim.key}, request {request.name}: adding {needed} devices exceeds the claim limit"
                        f" of {MAX_RESULTS_PER_CLAIM}, with {minimum} already accounted for"
                    )
                minimum += needed
            for i, c in enumerate(claim.constraints):
                if not c.match_attribute and not c.distinct_attribute:
                    raise Fatal(f"claim {claim.key}, constraint #{i}: empty constraint (unsupported constraint type?)")
            self.constraints.append([constraint_state(c) for c in claim.constraints])
            self.results.append([])

    def _validate(self, request: DeviceRequest, parent: str | None, key: Key) -> RequestData:
        claim = self.claims[key[0]]
        if request.derived_attributes:
            raise Fatal(
                f"claim {claim.key}, request {request.name}: cannot handle request with derived attributes,"
                " the feature is disabled"
            )
        for i, selector in enumerate(request.selectors):
            if selector is None:
                raise Fatal(
                    f"claim {claim.key}, request {request.name}, selector #{i}: CEL expression empty"
                    " (unsupported selector type?)"
                )
        if not request.device_class:
            raise Fatal(
                f"claim {claim.key}, request {request.name}: missing device class name (unsupported request type?)"
            )
        device_class = self.cluster.classes.get(request.device_class)
        if device_class is None:
            raise Fatal(
                f"claim {claim.key}, request {request.name}: could not retrieve device class {request.device_class}"
            )
        data = RequestData(request, parent, device_class)
        self.data[key] = data
        if request.mode == EXACT_COUNT:
            data.num_devices = request.count
        elif request.mode == ALL:
            data.all_devices = self._all_devices(data, key)
            data.num_devices = len(data.all_devices)
        else:
            raise Fatal(f"claim {claim.key}, request {request.name}: unsupported count mode {request.mode}")
        return data

    def _all_devices(self, data: RequestData, key: Key) -> list[Candidate]:
        claim, found = self.claims[key[0]], []
        for pool in self.pools:
            if pool.incomplete:
                raise Fatal(
                    f"claim {claim.key}, request {data.request.name}: asks for all devices, but resource pool"
                    f" {pool.id} is currently being updated"
                )
            if pool.invalid is not None:
                raise Fatal(
                    f"claim {claim.key}, request {data.request.name}: asks for all devices, but resource pool"
                    f" {pool.id} is currently invalid"
                )
            for slice_ in pool.slices:
                for device in slice_.devices:
                    device_id = DeviceId(slice_.driver, slice_.pool, device.name)
                    if not self._selectable(key, data, slice_, device, device_id):
                        continue
                    try:  # static capacity only: what is left is checked when allocating
                        short = capacity_shortfall(data.request.capacity, device.capacity, {}, {})
                    except CapacityError as e:
                        raise Fatal(
                            f"claim {claim.key}, request {data.request.name}: checking capacity for device"
                            f" {device.name}: {e}"
                        ) from e
                    if short is None:
                        found.append(Candidate(device_id, device, slice_, pool))
        return found

    # --- the recursion (``allocateOne``) --------------------------------------------------------------

    def run(self) -> bool:
        return self._one(0, 0, 0, 0, False, (0, 0, 0))

    def _one(self, ci: int, ri: int, si: int, di: int, in_sub: bool, start: tuple[int, int, int]) -> bool:
        # Each pass of the loop is one step of ``allocateOne``; moving on to the next request, or to the end
        # of the search, loops instead of recursing (nothing is rolled back or caught between those steps).
        claims = self.claims
        while True:
            self.steps += 1
            if self.max_steps is not None and self.steps > self.max_steps:
                raise OutOfSteps
            if ci >= len(claims):
                return True
            if ri >= len(claims[ci].requests):
                if ci + 1 >= len(claims):  # the next step ends the search: no _MaxSize to catch there
                    ci += 1
                    continue
                try:
                    return self._one(ci + 1, 0, 0, 0, False, (0, 0, 0))
                except _MaxSize:
                    return False
            data = self.data[(ci, ri, si)]
            if not in_sub and data.parent is not None:
                return self._subrequests(ci, ri, di)
            request = data.request
            if request.mode == ALL and not data.all_devices:
                return False
            if di < data.num_devices:
                break
            ri, si, di, in_sub, start = ri + 1, 0, 0, False, (0, 0, 0)
        if len(self.results[ci]) + data.num_devices - di > MAX_RESULTS_PER_CLAIM:
            raise _MaxSize
        if request.mode == ALL:
            assert data.all_devices is not None
            undo = self._allocate_device(ci, (ci, ri, si), data.all_devices[di], must=True)
            if undo is None:
                return False
            return self._descend(undo, lambda: self._one(ci, ri, si, di + 1, in_sub, (0, 0, 0)))
        return self._try_devices(ci, ri, si, di, in_sub, start)

    def _subrequests(self, ci: int, ri: int, di: int) -> bool:
        all_exceeded = True
        sub = 0
        while (ci, ri, sub) in self.data:
            try:
                done = self._one(ci, ri, sub, di, True, (0, 0, 0))
            except _MaxSize:
                sub += 1
                continue
            all_exceeded = False
            if done:
                self.data[(ci, ri, 0)].selected_sub = sub
                return True
            sub += 1
        if all_exceeded:
            raise _MaxSize
        return False

    def _try_devices(self, ci: int, ri: int, si: int, di: int, in_sub: bool, start: tuple[int, int, int]) -> bool:
        key = (ci, ri, si)
        data = self.data[key]
        admin = data.request.admin_access
        pools = self.pools
        for pi in range(start[0], len(pools)):
            pool = pools[pi]
            if not pool.usable:
                continue
            for sli in range(start[1] if pi == start[0] else 0, len(pool.slices)):
                slice_ = pool.slices[sli]
                first = start[2] if (pi, sli) == start[:2] else 0
                devices, ids = slice_.devices, slice_.device_ids
                for dvi in range(first, len(devices)):
                    device, device_id = devices[dvi], ids[dvi]
                    if admin:
                        if ci in self.allocating.get(device_id, ()):
                            continue
                    elif self._in_use(device_id):
                        continue
                    if not self._selectable(key, data, slice_, device, device_id):
                        continue
                    if not self._capacity_fits(ci, data, device, device_id, "checking"):
                        continue
                    undo = self._allocate_device(ci, key, Candidate(device_id, device, slice_, pool), must=False)
                    if undo is None:
                        continue
                    try:  # _descend, inline: this is the search's innermost loop
                        done = self._one(ci, ri, si, di + 1, in_sub, (pi, sli, dvi + 1))
                    except BaseException:
                        undo()
                        raise
                    if done:
                        return True
                    undo()
        return False

    @staticmethod
    def _descend(undo: Callable[[], None], step: Callable[[], bool]) -> bool:
        """Run the next step; roll the choice back unless it led to a full solution."""
        try:
            done = step()
        except BaseException:
            undo()
            raise
        if not done:
            undo()
        return done

    # --- one candidate (``isSelectable``, ``allocateDevice``) -----------------------------------------

    def _in_use(self, device_id: DeviceId) -> bool:
        held, allocating = self.held, self.allocating
        return bool((held and device_id in held) or (allocating and allocating.get(device_id)))

    def _selectable(self, key: Key, data: RequestData, slice_: Slice, device: Device, device_id: DeviceId) -> bool:
        cached = self.match_cache.get((device, key))
        if cached is None:
            try:
                cached = device_matches(
                    self.claims[key[0]], data.device_class, data.request, slice_, device, device_id, self.node
                )
            except SelectionError as e:
                raise Fatal(str(e)) from e
            self.match_cache[(device, key)] = cached
        return cached

    def _capacity_fits(self, ci: int, data: RequestData, device: Device, device_id: DeviceId, verb: str) -> bool:
        held = self.cluster.allocated.capacity
        if not data.request.capacity and not held and not self.allocating_capacity and device.plain_capacity:
            return True  # nothing consumed anywhere: what capacity_shortfall would find, without the amounts
        allocated = held.get(device_id, {})
        allocating = self.allocating_capacity.get(device_id, {})
        if not data.request.capacity and not allocated and not allocating and device.plain_capacity:
            return True  # what capacity_shortfall would find, without computing the amounts
        try:
            return capacity_shortfall(data.request.capacity, device.capacity, allocated, allocating) is None
        except CapacityError as e:
            raise Fatal(
                f"claim {self.claims[ci].key}, request {data.request.name}: {verb} capacity for device {device_id}: {e}"
            ) from e

    def _shared(self, device_id: DeviceId) -> bool:
        """``deviceCapacityInUse``: a multi-allocatable device already shared (its counters are taken)."""
        allocated = self.cluster.allocated
        return (
            device_id in allocated.capacity
            or device_id in allocated.shared_devices
            or device_id in self.allocating_capacity
        )

    def _allocate_device(self, ci: int, key: Key, cand: Candidate, must: bool) -> Callable[[], None] | None:
        data = self.data[key]
        request, device, device_id = data.request, cand.device, cand.id
        multi = device.allow_multiple_allocations
        if not multi and request.admin_access and ci in self.allocating.get(device_id, ()):
            return None
        if not request.admin_access and self._in_use(device_id):
            return None
        undo = Rollback(self, ci, cand, data)
        if device.consumes_counters and not (multi and self._shared(device_id)):
            if not self._take_counters(cand):
                return None
            undo.counters = True
        if device.taints and untolerated(device.taints, request.tolerations):
            undo()
            return None
        for state in self.constraints[ci]:
            if not state.add(data.base, data.sub, device, device_id):
                undo()
                if must:
                    raise Fatal(
                        f"claim {self.claims[ci].key}, request {request.name}: cannot add device {device_id}"
                        " because a claim constraint would not be satisfied"
                    )
                return None
            undo.constraints_added += 1
        if not multi:
            self.allocating.setdefault(device_id, set()).add(ci)
            undo.marked = True
        try:
            fits = self._capacity_fits(ci, data, device, device_id, "rechecking")
        except Fatal:
            undo()
            raise
        if not fits:
            undo()
            return None
        chosen = Chosen(data.name, cand, admin_access=request.admin_access)
        if multi:
            try:
                consumed = consumed_capacity(request.capacity, device.capacity)
            except CapacityError as e:
                undo()
                raise Fatal(
                    f"claim {self.claims[ci].key}, request {request.name}: computing consumed capacity for device"
                    f" {device_id}: {e}"
                ) from e
            chosen.consumed = consumed or None
            chosen.share_id = self._share_id(ci, data.name, device_id)
            undo.capacity_existed = device_id in self.allocating_capacity
            insert(self.allocating_capacity, device_id, consumed)
            undo.capacity = consumed
        undo.previous = len(self.results[ci])
        self.results[ci].append(chosen)
        undo.result = True
        return undo

    def _take_counters(self, cand: Candidate) -> bool:
        pool = cand.pool
        consumed = self.consumed_counters.setdefault(pool.id, {})
        counters.add(consumed, cand.device.consumes_counters)
        if not counters.fits(pool, self.cluster.allocated, consumed):
            counters.add(consumed, cand.device.consumes_counters, -1)
            return False
        return True

    def _share_id(self, ci: int, request: str, device_id: DeviceId) -> str:
        claim = self.claims[ci]
        n = sum(1 for c in self.results[ci] if c.candidate.id == device_id)
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dra-share:{claim.uid or claim.key}/{request}/{device_id}/{n}"))
