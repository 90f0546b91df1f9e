"""Pool generations, completeness, validity and per-device node selection."""

from __future__ import annotations

from dra_driver.structured import Allocation, Failed, Node, Unsatisfiable, allocate
from dra_driver.structured.pools import gather_pools
from dra_driver.structured.reasons import IncompletePool, InvalidPool
from tests.allocator.builders import NODE, claim, cluster, device, exact, gpus, resource_slice


def devices_of(outcome: object) -> list[str]:
    assert isinstance(outcome, Allocation), outcome
    return [r.device for r in outcome.results]


def test_only_the_highest_generation_of_a_pool_counts() -> None:
    old = resource_slice("old", [device("stale-0"), device("stale-1")], generation=1)
    new = resource_slice("new", [device("fresh-0")], generation=2)
    state = cluster([old, new])
    assert devices_of(allocate(state, claim("c", exact("gpu")), NODE)) == ["fresh-0"]
    assert isinstance(allocate(state, claim("c", exact("gpu", count=2)), NODE), Unsatisfiable)


def test_incomplete_pool_is_not_used_and_is_reported() -> None:
    state = cluster([resource_slice("s0", gpus(2), count=2)])
    outcome = allocate(state, claim("c", exact("gpu")), NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert IncompletePool("gpu.dra-driver.dev/node-1", 1, 2) in outcome.reasons


def test_pool_completes_with_slices_the_node_does_not_see() -> None:
    mine = resource_slice("s-mine", [device("local")], node="node-1", pool="fabric", count=2)
    theirs = resource_slice("s-theirs", [device("remote")], node="node-2", pool="fabric", count=2)
    state = cluster([mine, theirs])
    assert devices_of(allocate(state, claim("c", exact("gpu")), NODE)) == ["local"]
    (pool,) = gather_pools(state.slices, NODE)
    assert [s.name for s in pool.slices] == ["s-mine"] and [s.name for s in pool.other_slices] == ["s-theirs"]


def test_pool_being_replaced_by_a_newer_generation_elsewhere_is_ignored() -> None:
    mine = resource_slice("s-mine", [device("local")], node="node-1", pool="fabric", count=2, generation=1)
    newer = resource_slice("s-new", [device("remote")], node="node-2", pool="fabric", count=1, generation=2)
    state = cluster([mine, newer])
    assert gather_pools(state.slices, NODE) == ()


def test_duplicate_device_names_make_the_pool_invalid() -> None:
    state = cluster([resource_slice("a", [device("gpu-0")], count=2), resource_slice("b", [device("gpu-0")], count=2)])
    outcome = allocate(state, claim("c", exact("gpu")), NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert outcome.message == "invalid resource pools were encountered"
    assert InvalidPool("gpu.dra-driver.dev/node-1", "duplicate device name gpu-0") in outcome.reasons


def test_consuming_an_unknown_counter_set_makes_the_pool_invalid() -> None:
    bad = device("g", consumesCounters=[{"counterSet": "nope", "counters": {"x": {"value": "1"}}}])
    (pool,) = gather_pools(cluster([resource_slice("s", [bad])]).slices, NODE)
    assert pool.invalid == "counter set nope not found"


def test_per_device_node_selection_admits_only_devices_for_this_node() -> None:
    devices = [device("for-2", nodeName="node-2"), device("for-1", nodeName="node-1"), device("for-all", allNodes=True)]
    state = cluster([resource_slice("s", devices, pool="shared", perDeviceNodeSelection=True)])
    outcome = allocate(state, claim("c", exact("gpu", count=2)), NODE)
    assert devices_of(outcome) == ["for-1", "for-all"]
    assert isinstance(allocate(state, claim("c", exact("gpu", count=3)), NODE), Unsatisfiable)
    assert devices_of(allocate(state, claim("c", exact("gpu")), Node("node-3"))) == ["for-all"]


def test_malformed_node_selector_fails_scheduling() -> None:
    broken = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]}]}
    state = cluster([resource_slice("s", gpus(1), nodeSelector=broken)])
    outcome = allocate(state, claim("c", exact("gpu")), NODE)
    assert isinstance(outcome, Failed) and "unknown operator" in outcome.message


def test_slices_using_compatibility_groups_are_ignored_leaving_the_pool_incomplete() -> None:
    grouped = device("g", consumesCounters=[{"counterSet": "s", "counters": {}, "compatibilityGroups": ["a"]}])
    state = cluster([resource_slice("a", gpus(1), count=2), resource_slice("b", [grouped], count=2)])
    outcome = allocate(state, claim("c", exact("gpu")), NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert IncompletePool("gpu.dra-driver.dev/node-1", 1, 2) in outcome.reasons
