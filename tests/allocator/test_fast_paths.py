"""The allocator's shortcuts (objects built without their __init__, per-slice and per-device memos, the
search's loop over finished requests) give what the plain way gives."""

from __future__ import annotations

import dataclasses

import pytest

from dra_driver.cel import CelEvalError, compile_selector
from dra_driver.structured import Allocation, Failed, Node, Unsatisfiable, allocate
from dra_driver.structured.model import CounterConsumption, Device, Slice
from dra_driver.structured.outcome import ClaimAllocation, DeviceResult
from dra_driver.structured.parse import parse_claim, parse_slice
from dra_driver.structured.pools import gather_pools
from tests.allocator.builders import (
    NODE,
    attributes,
    claim,
    cluster,
    consumes,
    counter_set,
    device,
    exact,
    first_available,
    gpus,
    resource_slice,
    sub,
)


def _as_constructed(obj: object) -> None:
    """Every dataclass field is set, and the constructor given those values makes an equal object."""
    assert dataclasses.is_dataclass(obj) and not isinstance(obj, type)
    names = [f.name for f in dataclasses.fields(obj) if f.init]
    assert set(names) <= set(vars(obj))
    rebuilt = type(obj)(**{n: getattr(obj, n) for n in names})
    assert all(getattr(rebuilt, n) == getattr(obj, n) for n in names)


def test_pools_and_allocation_results_carry_every_field_their_constructor_would_set() -> None:
    state = cluster(
        [
            resource_slice("whole", gpus(2)),
            resource_slice("split-1", gpus(1, "a"), pool="split", count=2),
            resource_slice("split-2", gpus(1, "b"), pool="split", count=2),
            resource_slice("half", gpus(1, "h"), pool="half", count=2),
            resource_slice("dup-1", [device("x")], pool="dup", count=2),
            resource_slice("dup-2", [device("x")], pool="dup", count=2),
        ]
    )
    pools = gather_pools(state, NODE)
    assert [(p.id.pool, p.incomplete, p.invalid) for p in pools] == [
        ("dup", False, "duplicate device name x"),
        ("half", True, None),
        ("node-1", False, None),
        ("split", False, None),
    ]
    for pool in pools:
        _as_constructed(pool)
    outcome = allocate(state, claim("c", exact("gpu", count=2)), NODE)
    assert isinstance(outcome, Allocation)
    (allocation,) = outcome.claims
    _as_constructed(allocation)
    for r in allocation.results:
        _as_constructed(r)
    assert isinstance(allocation, ClaimAllocation) and all(isinstance(r, DeviceResult) for r in allocation.results)
    assert [r.device for r in allocation.results] == ["gpu-0", "gpu-1"]


def test_a_duplicate_device_name_across_a_pools_slices_is_named_first_in_slice_order() -> None:
    state = cluster(
        [
            resource_slice("s-2", [device("b"), device("a")], count=2),
            resource_slice("s-1", [device("a"), device("b")], count=2),
        ]
    )
    (pool,) = gather_pools(state, NODE)
    assert pool.invalid == "duplicate device name a"  # slices by name: s-1 lists a first


def test_the_first_consumption_of_an_unknown_counter_is_named_whichever_slice_needs_it() -> None:
    sets = [counter_set("gpu-0", memory="4"), counter_set("gpu-1")]
    counters = resource_slice("counters", shared_counters=sets, count=3)
    fine = resource_slice("s-1", [device("a", consumesCounters=[consumes("gpu-0", memory="1")])], count=3)
    bad = [
        device("b", consumesCounters=[consumes("gpu-0", memory="1")]),
        device("c", consumesCounters=[consumes("gpu-1", sms="1"), consumes("gpu-0", memory="1", sms="2")]),
    ]
    state = cluster([counters, fine, resource_slice("s-2", bad, count=3)])
    (pool,) = gather_pools(state, NODE)
    assert pool.invalid == "counter sms not found in counter set gpu-1"
    assert [s.name for s in pool.slices] == ["s-1", "s-2"]
    good = cluster([counters, fine, resource_slice("s-2", bad[:1], count=3)])
    (pool,) = gather_pools(good, NODE)
    assert pool.invalid is None and set(pool.counter_sets) == {"gpu-0", "gpu-1"}


def test_slices_of_different_nodes_share_what_their_devices_need_from_the_counter_sets() -> None:
    def node_slice(node: str) -> Slice:
        devices = [device(f"g-{i}", consumesCounters=[consumes("gpu-0", memory=str(i))]) for i in range(3)]
        return parse_slice(resource_slice(f"{node}-s", devices, node=node, pool=node))

    first, second = node_slice("node-1"), node_slice("node-2")
    assert first.consumptions == second.consumptions and all(
        a is b for a, b in zip(first.consumptions, second.consumptions, strict=True)
    )
    assert first.counter_needs is second.counter_needs
    assert first.counter_needs == (("gpu-0", frozenset({"memory"})),)
    assert isinstance(first.consumptions[0], CounterConsumption)


def test_devices_named_finds_every_device_of_a_name_in_listing_order() -> None:
    plain = parse_slice(resource_slice("s", [device("a"), device("b"), device("c")]))
    assert [d.name for d in plain.devices_named({"c", "a", "z"})] == ["a", "c"]
    twice = parse_slice(resource_slice("s", [device("a", attributes(n=1)), device("b"), device("a", attributes(n=2))]))
    assert [(d.name, d.attributes.get("n")) for d in twice.devices_named({"a"})] == [
        ("a", {"int": 1}),
        ("a", {"int": 2}),
    ]


def test_a_devices_selector_results_are_remembered_per_expression_and_errors_raised_every_time() -> None:
    (good, bad) = parse_slice(
        resource_slice("s", [device("g", attributes(model="x")), device("b", {"v": {"version": "not-semver"}})])
    ).devices
    is_x = compile_selector('device.attributes["gpu.dra-driver.dev"].model == "x"')
    not_x = compile_selector('device.attributes["gpu.dra-driver.dev"].model != "x"')
    for _ in range(2):
        assert good.matches(is_x) and not good.matches(not_x)
    assert good.selector_results == {is_x.expression: True, not_x.expression: False}
    errors = []
    for _ in range(2):
        with pytest.raises(CelEvalError) as caught:
            bad.matches(is_x)
        errors.append(caught.value)
    assert errors[0] is not errors[1] and errors[0].message == errors[1].message
    assert isinstance(bad, Device) and isinstance(bad.selector_results[is_x.expression], CelEvalError)


def test_the_search_counts_a_step_for_each_finished_request_and_claim_as_before() -> None:
    state = cluster([resource_slice("s", gpus(2))])
    # the start, the device, the end of the request (and so on per request), the end of the claims
    for requests, steps in (((exact("a"),), 4), ((exact("a"), exact("b")), 6)):
        assert isinstance(allocate(state, claim("c", *requests), NODE, max_steps=steps), Allocation)
        assert allocate(state, claim("c", *requests), NODE, max_steps=steps - 1) == Failed(
            "node-1", "node node-1: timed out trying to allocate devices"
        )


def test_capacities_and_consumptions_are_shared_whatever_form_their_values_take() -> None:
    raw = [
        device("a", capacity={"memory": "1Gi"}, consumesCounters=[consumes("gpu-0", memory="1Gi")]),
        device("b", consumesCounters=[{"counterSet": "gpu-0", "counters": {"memory": {"value": "1Gi"}}}]),
        {"name": "c", "capacity": {"memory": {"value": "1Gi", "requestPolicy": None}}},
        {"name": "d", "capacity": {"n": {"value": 2}}, "consumesCounters": [consumes("gpu-0", n=2)]},  # type: ignore[arg-type]
        {"name": "e", "capacity": {"n": {"value": "2"}}, "consumesCounters": [consumes("gpu-0", n="2")]},
    ]
    a, b, c, d, e = parse_slice(resource_slice("s", raw)).devices
    assert a.consumes_counters[0] is b.consumes_counters[0] and d.consumes_counters[0] is e.consumes_counters[0]
    assert d.capacity is e.capacity and d.capacity["n"].value.nanos == 2 * 10**9
    assert c.capacity == a.capacity and c.capacity["memory"].policy is None and c.plain_capacity


def test_a_claim_allocated_node_after_node_on_one_state_gets_each_nodes_own_answer() -> None:
    two = Node("node-2", {"kubernetes.io/hostname": "node-2"})
    state = cluster(
        [resource_slice("a", gpus(1, "small")), resource_slice("b", gpus(3, "big"), node="node-2", pool="node-2")]
    )
    cases = {  # claim -> (devices on node-1 or None when it does not fit, devices on node-2)
        "exact": (claim("c", exact("gpu", count=2)), None, ["big-0", "big-1"]),
        "first": (claim("c", first_available("r", sub("two", count=2), sub("one"))), ["small-0"], ["big-0", "big-1"]),
        "all": (claim("c", exact("gpu", allocationMode="All")), ["small-0"], ["big-0", "big-1", "big-2"]),
    }
    for raw, on_one, on_two in cases.values():
        parsed = parse_claim(raw)  # one Claim object for every node, as a scheduling cycle has
        for node, wanted in ((NODE, on_one), (two, on_two), (NODE, on_one), (two, on_two)):
            outcome = allocate(state, parsed, node)
            if wanted is None:
                assert isinstance(outcome, Unsatisfiable), outcome
            else:
                assert isinstance(outcome, Allocation) and [r.device for r in outcome.results] == wanted, outcome
    first = allocate(state, parse_claim(cases["first"][0]), NODE)
    assert isinstance(first, Allocation) and first.results[0].request == "r/one"
