"""Consumable capacity: devices with allowMultipleAllocations shared by capacity requests."""

from __future__ import annotations

from typing import Any

from dra_driver.structured import Allocation, ClusterState, Failed, Unsatisfiable, allocate
from dra_driver.structured.reasons import CapacityExhausted
from tests.allocator.builders import (
    NODE,
    allocated,
    claim,
    cluster,
    device,
    device_class,
    exact,
    first_available,
    resource_slice,
    result,
    sub,
)

POLICY = {"default": "10Gi", "validRange": {"min": "1Gi", "max": "20Gi", "step": "1Gi"}}


def shared_gpu(policy: dict[str, Any] | None = POLICY, name: str = "gpu-0") -> dict[str, Any]:
    memory: dict[str, Any] = {"value": "40Gi"}
    if policy is not None:
        memory["requestPolicy"] = policy
    return {"name": name, "allowMultipleAllocations": True, "capacity": {"memory": memory}}


def state(*held_memory: str, policy: dict[str, Any] | None = POLICY) -> ClusterState:
    held = [
        allocated(f"held-{i}", result("gpu-0", shareID=f"share-{i}", consumedCapacity={"memory": m}))
        for i, m in enumerate(held_memory)
    ]
    return cluster([resource_slice("s", [shared_gpu(policy)])], allocated_claims=held)


def memory_claim(amount: str | None, count: int = 1) -> dict[str, Any]:
    extra: dict[str, Any] = {"capacity": {"requests": {"memory": amount}}} if amount is not None else {}
    return claim("c", exact("gpu", count=count, **extra))


def consumed(outcome: object) -> list[str]:
    assert isinstance(outcome, Allocation), outcome
    assert all(r.share_id for r in outcome.results)
    return [dict(r.consumed_capacity or {})["memory"] for r in outcome.results]


def test_capacity_request_is_consumed_and_recorded_with_a_share_id() -> None:
    assert consumed(allocate(state(), memory_claim("15Gi"), NODE)) == ["15Gi"]


def test_without_a_request_the_policy_default_is_consumed() -> None:
    assert consumed(allocate(state(), memory_claim(None), NODE)) == ["10Gi"]


def test_without_a_policy_an_unrequested_capacity_is_consumed_whole() -> None:
    assert consumed(allocate(state(policy=None), memory_claim(None), NODE)) == ["40Gi"]


def test_requests_round_up_to_the_valid_range_step() -> None:
    assert consumed(allocate(state(), memory_claim("1500Mi"), NODE)) == ["2Gi"]
    assert consumed(allocate(state(), memory_claim("100Mi"), NODE)) == ["1Gi"]


def test_requests_round_up_to_the_next_valid_value() -> None:
    values = {"validValues": ["4Gi", "8Gi", "16Gi"]}
    assert consumed(allocate(state(policy=values), memory_claim("5Gi"), NODE)) == ["8Gi"]
    assert isinstance(allocate(state(policy=values), memory_claim("17Gi"), NODE), Unsatisfiable)


def test_request_above_the_policy_maximum_cannot_be_served() -> None:
    outcome = allocate(state(), memory_claim("21Gi"), NODE)
    assert isinstance(outcome, Unsatisfiable)
    (short,) = [r for r in outcome.reasons if isinstance(r, CapacityExhausted)]
    assert "not allowed by the request policy" in short.detail


def test_already_allocated_shares_leave_only_the_remainder() -> None:
    assert consumed(allocate(state("20Gi", "10Gi"), memory_claim("10Gi"), NODE)) == ["10Gi"]
    outcome = allocate(state("20Gi", "10Gi"), memory_claim("11Gi"), NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert CapacityExhausted("gpu", 1, "capacity memory: 41Gi needed, 40Gi available") in outcome.reasons


def test_requests_of_one_claim_may_share_a_device_but_one_request_takes_it_once() -> None:
    each: dict[str, Any] = {"capacity": {"requests": {"memory": "20Gi"}}}
    outcome = allocate(state(), claim("c", exact("a", **each), exact("b", **each)), NODE)
    assert consumed(outcome) == ["20Gi", "20Gi"]
    assert isinstance(outcome, Allocation)
    assert {r.device for r in outcome.results} == {"gpu-0"}
    assert len({r.share_id for r in outcome.results}) == 2
    third = claim("c", exact("a", **each), exact("b", **each), exact("c", **each))
    assert isinstance(allocate(state(), third, NODE), Unsatisfiable)
    # Within one request the search moves past a chosen device, so count 2 needs two devices.
    assert isinstance(allocate(state(), memory_claim("20Gi", count=2), NODE), Unsatisfiable)


def test_requesting_a_capacity_the_device_lacks_makes_it_unusable() -> None:
    want = claim("c", exact("gpu", capacity={"requests": {"bandwidth": "1G"}}))
    assert isinstance(allocate(state(), want, NODE), Unsatisfiable)


def test_dedicated_devices_check_requests_against_their_capacity_but_record_none() -> None:
    dedicated = device("gpu-0", capacity={"memory": "40Gi"})
    s = cluster([resource_slice("s", [dedicated])])
    fits = allocate(s, claim("c", exact("gpu", capacity={"requests": {"memory": "40Gi"}})), NODE)
    assert (
        isinstance(fits, Allocation) and fits.results[0].share_id is None and fits.results[0].consumed_capacity is None
    )
    assert isinstance(
        allocate(s, claim("c", exact("gpu", capacity={"requests": {"memory": "41Gi"}})), NODE), Unsatisfiable
    )


def test_shared_allocations_do_not_make_the_device_in_use() -> None:
    shared = state("10Gi")
    selector = "device.allowMultipleAllocations"
    assert consumed(allocate(shared, claim("c", exact("gpu", "gpu", None, selector)), NODE)) == ["10Gi"]


MULTI_CLASS = "device.allowMultipleAllocations == true"


def counted(name: str, memory: str) -> dict[str, Any]:
    return {
        "name": name,
        "allowMultipleAllocations": True,
        "capacity": {"memory": {"value": memory}},
        "consumesCounters": [{"counterSet": "set", "counters": {"memory": {"value": memory}}}],
    }


def counted_state(*held: dict[str, Any]) -> ClusterState:
    slices = [
        resource_slice("a", [counted("d1", "4Gi"), counted("d2", "6Gi"), counted("d3", "4Gi")], count=2),
        resource_slice("b", shared_counters=[{"name": "set", "counters": {"memory": {"value": "8Gi"}}}], count=2),
    ]
    return cluster(slices, [device_class("gpu", MULTI_CLASS)], list(held))


def test_multi_allocatable_devices_consume_shared_counters_once() -> None:
    # Upstream "allow-multiple-allocations-with-partitionable-device".
    memory = 'device.capacity["gpu.dra-driver.dev"].memory.compareTo(quantity("{}")) >= 0'
    want = claim(
        "c",
        exact("req0"),
        first_available(
            "req1", sub("big", "gpu", 1, memory.format("6Gi")), sub("small", "gpu", 1, memory.format("4Gi"))
        ),
    )
    outcome = allocate(counted_state(), want, NODE)
    assert isinstance(outcome, Allocation)
    assert [(r.request, r.device, dict(r.consumed_capacity or {})) for r in outcome.results] == [
        ("req0", "d1", {"memory": "4Gi"}),
        ("req1/small", "d3", {"memory": "4Gi"}),
    ]


def test_counters_of_a_shared_allocation_from_an_earlier_cycle_are_taken() -> None:
    # Upstream "allow-multiple-allocations-with-shared-device-counter-cross-cycle", with d1 already shared.
    held = allocated("held", result("d1", shareID="s", consumedCapacity={"memory": "1Gi"}))
    want = claim("c", exact("r", "gpu", 1, 'device.capacity["gpu.dra-driver.dev"].memory == quantity("6Gi")'))
    assert isinstance(allocate(counted_state(held), want, NODE), Unsatisfiable)


def test_fractional_range_steps_use_milli_units() -> None:
    policy = {"validRange": {"min": "500m", "max": "2", "step": "250m"}}
    assert consumed(allocate(state(policy=policy), memory_claim("600m"), NODE)) == ["750m"]
    assert consumed(allocate(state(policy=policy), memory_claim("100m"), NODE)) == ["500m"]


def test_request_finer_than_a_milli_unit_against_a_milli_range_fails_scheduling() -> None:
    policy = {"validRange": {"min": "500m", "step": "250m"}}
    outcome = allocate(state(policy=policy), memory_claim("600001u"), NODE)
    assert isinstance(outcome, Failed)
    assert outcome.message.startswith("claim default/c, request gpu: checking capacity for device")
    assert "is not a representable milli value" in outcome.message


def test_persisted_share_without_consumed_capacity_does_not_charge_counters_again() -> None:
    # kubernetes#140437 (in 1.37.2): a share recorded by share ID only still marks the device as shared.
    counters_only = {
        "name": "d",
        "allowMultipleAllocations": True,
        "consumesCounters": [{"counterSet": "set", "counters": {"memory": {"value": "4Gi"}}}],
    }
    slices = [
        resource_slice("a", [counters_only], count=2),
        resource_slice("b", shared_counters=[{"name": "set", "counters": {"memory": {"value": "4Gi"}}}], count=2),
    ]
    held = allocated("held", result("d", shareID="s"))
    outcome = allocate(cluster(slices, [device_class("gpu", MULTI_CLASS)], [held]), claim("c", exact("r")), NODE)
    assert isinstance(outcome, Allocation) and outcome.results[0].device == "d"
