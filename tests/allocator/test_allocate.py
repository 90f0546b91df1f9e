"""Exact counts, first-fit order, devices in use, admin access, the 32-result limit and failure modes."""

from __future__ import annotations

from dra_driver.structured import Allocation, Failed, Node, Unsatisfiable, allocate, allocate_claims
from dra_driver.structured.reasons import ClassNotFound, DevicesInUse, NoMatchingDevice, NotEnoughDevices
from tests.allocator.builders import (
    DRIVER,
    NODE,
    allocated,
    attributes,
    claim,
    cluster,
    device,
    device_class,
    exact,
    gpus,
    resource_slice,
    result,
)


def devices_of(outcome: object) -> list[str]:
    assert isinstance(outcome, Allocation), outcome
    return [r.device for r in outcome.results]


def test_exact_count_takes_the_first_devices_in_slice_order() -> None:
    state = cluster([resource_slice("s", gpus(4))])
    assert devices_of(allocate(state, claim("c", exact("gpu", count=2)), NODE)) == ["gpu-0", "gpu-1"]


def test_count_defaults_to_one_and_results_carry_request_driver_and_pool() -> None:
    outcome = allocate(cluster([resource_slice("s", gpus(2))]), claim("c", exact("gpu")), NODE)
    assert isinstance(outcome, Allocation)
    (only,) = outcome.results
    assert (only.request, only.driver, only.pool, only.device) == ("gpu", DRIVER, "node-1", "gpu-0")
    assert outcome.claims[0].to_api()["nodeSelector"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]
    }


def test_pools_are_searched_by_driver_then_pool_name_and_slices_by_name() -> None:
    slices = [
        resource_slice("z-slice", [device("z0")], pool="b-pool"),
        resource_slice("b-slice", [device("b0")], pool="a-pool", count=2),
        resource_slice("a-slice", [device("a0")], pool="a-pool", count=2),
        resource_slice("x", [device("other-driver")], pool="a-pool", driver="a.example.com"),
    ]
    classes = [device_class("any", driver=None)]
    state = cluster(slices, classes)
    found = devices_of(allocate(state, claim("c", exact("r", "any", count=4)), NODE))
    assert found == ["other-driver", "a0", "b0", "z0"]


def test_slices_of_other_nodes_are_not_visible() -> None:
    state = cluster([resource_slice("s", gpus(2), node="node-2", pool="node-2")])
    outcome = allocate(state, claim("c", exact("gpu")), NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert outcome.message == "cannot allocate all claims"
    assert outcome.reasons == (NoMatchingDevice("gpu", 0),)


def test_devices_held_by_allocated_claims_are_skipped() -> None:
    state = cluster(
        [resource_slice("s", gpus(3))], allocated_claims=[allocated("old", result("gpu-0"), result("gpu-1"))]
    )
    assert devices_of(allocate(state, claim("c", exact("gpu")), NODE)) == ["gpu-2"]
    outcome = allocate(state, claim("c", exact("gpu", count=2)), NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert NotEnoughDevices("gpu", 2, 1, 3) in outcome.reasons
    assert DevicesInUse("gpu", 2) in outcome.reasons


def test_admin_access_may_use_devices_in_use_but_not_twice_in_one_claim() -> None:
    state = cluster(
        [resource_slice("s", gpus(2))], allocated_claims=[allocated("old", result("gpu-0"), result("gpu-1"))]
    )
    outcome = allocate(state, claim("c", exact("gpu", count=2, adminAccess=True)), NODE)
    assert devices_of(outcome) == ["gpu-0", "gpu-1"]
    assert isinstance(outcome, Allocation) and all(r.admin_access for r in outcome.results)
    assert isinstance(allocate(state, claim("c", exact("gpu", count=3, adminAccess=True)), NODE), Unsatisfiable)


def test_admin_access_results_do_not_make_devices_unavailable() -> None:
    admin = allocated("watcher", result("gpu-0", adminAccess=True))
    state = cluster([resource_slice("s", gpus(1))], allocated_claims=[admin])
    assert devices_of(allocate(state, claim("c", exact("gpu")), NODE)) == ["gpu-0"]


def test_class_and_request_selectors_must_all_match() -> None:
    devices = [device("a", attributes(model="A100")), device("h", attributes(model="H100", mem=80))]
    classes = [device_class("h100", f'device.attributes["{DRIVER}"].model == "H100"')]
    state = cluster([resource_slice("s", devices)], classes)
    assert devices_of(allocate(state, claim("c", exact("r", "h100")), NODE)) == ["h"]
    pick = claim("c", exact("r", "h100", None, f'device.attributes["{DRIVER}"].mem < 80'))
    outcome = allocate(state, pick, NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert outcome.reasons == (NoMatchingDevice("r", 2),)


def test_missing_class_leaves_the_claim_waiting() -> None:
    outcome = allocate(cluster([resource_slice("s", gpus(1))]), claim("c", exact("gpu", "nope")), NODE)
    assert outcome == Unsatisfiable(
        "node-1", "request gpu: device class nope does not exist", (ClassNotFound("gpu", "nope"),)
    )


def test_selector_runtime_error_on_a_reached_device_fails_scheduling() -> None:
    state = cluster([resource_slice("s", [device("a", attributes(model="x")), device("b")])])
    bad = claim("c", exact("gpu", "gpu", 2, f'device.attributes["{DRIVER}"].model == "x"'))
    outcome = allocate(state, bad, NODE)
    assert isinstance(outcome, Failed)
    assert outcome.message.startswith(
        "claim default/c: selector #0 on device gpu.dra-driver.dev/node-1/b: CEL runtime error"
    )
    assert "no such key: model" in outcome.message


def test_selector_error_on_a_device_never_reached_does_not_matter() -> None:
    state = cluster([resource_slice("s", [device("a", attributes(model="x")), device("b")])])
    ok = claim("c", exact("gpu", "gpu", 1, f'device.attributes["{DRIVER}"].model == "x"'))
    assert devices_of(allocate(state, ok, NODE)) == ["a"]


def test_class_selector_compile_error_fails_scheduling_naming_the_class() -> None:
    state = cluster([resource_slice("s", gpus(1))], [device_class("gpu", "device.driver ==")])
    outcome = allocate(state, claim("c", exact("gpu")), NODE)
    assert isinstance(outcome, Failed)
    assert outcome.message.startswith("class gpu: selector #1: CEL compile error: compilation failed:")


def test_at_most_32_results_per_claim() -> None:
    state = cluster([resource_slice("s", gpus(40))])
    assert len(devices_of(allocate(state, claim("c", exact("gpu", count=32)), NODE))) == 32
    too_many = allocate(state, claim("c", exact("a", count=20), exact("b", count=13)), NODE)
    assert isinstance(too_many, Failed)
    assert too_many.message == (
        "claim default/c, request b: adding 13 devices exceeds the claim limit of 32, with 20 already accounted for"
    )


def test_separate_claims_of_a_pod_get_different_devices() -> None:
    state = cluster([resource_slice("s", gpus(2))])
    outcome = allocate_claims(state, [claim("a", exact("gpu")), claim("b", exact("gpu"))], NODE)
    assert isinstance(outcome, Allocation)
    assert [(c.claim, [r.device for r in c.results]) for c in outcome.claims] == [
        ("default/a", ["gpu-0"]),
        ("default/b", ["gpu-1"]),
    ]
    assert isinstance(allocate_claims(state, [claim(n, exact("gpu")) for n in "abc"], NODE), Unsatisfiable)


def test_backtracking_undoes_an_earlier_choice_across_requests() -> None:
    # "any" would take the first device, the only "big" one; the search must move it to the second device.
    devices = [device("big", attributes(mem=80)), device("small", attributes(mem=40))]
    state = cluster([resource_slice("s", devices)])
    two = claim("c", exact("any"), exact("big", "gpu", 1, f'device.attributes["{DRIVER}"].mem == 80'))
    outcome = allocate(state, two, NODE)
    assert isinstance(outcome, Allocation)
    assert [(r.request, r.device) for r in outcome.results] == [("any", "small"), ("big", "big")]


def test_backtracking_across_claims() -> None:
    devices = [device("big", attributes(mem=80)), device("small", attributes(mem=40))]
    state = cluster([resource_slice("s", devices)])
    claims = [
        claim("first", exact("any")),
        claim("second", exact("big", "gpu", 1, f'device.attributes["{DRIVER}"].mem == 80')),
    ]
    outcome = allocate_claims(state, claims, NODE)
    assert isinstance(outcome, Allocation)
    assert [r.device for r in outcome.results] == ["small", "big"]


def test_unknown_request_type_and_missing_class_name() -> None:
    state = cluster([resource_slice("s", gpus(1))])
    unknown = allocate(state, claim("c", {"name": "x"}), NODE)
    assert isinstance(unknown, Unsatisfiable) and "unknown request type" in unknown.message
    nameless = allocate(state, claim("c", {"name": "x", "exactly": {}}), NODE)
    assert nameless == Failed("node-1", "request x: unsupported request type")


def test_search_budget_exhaustion_fails_like_the_filter_timeout() -> None:
    state = cluster([resource_slice("s", gpus(12))])
    # Every set of 6 of 12 devices is tried before the search learns that the second request cannot match.
    hopeless = claim("c", exact("a", count=6), exact("b", "gpu", 1, "false"))
    outcome = allocate(state, hopeless, NODE, max_steps=50)
    assert outcome == Failed("node-1", "node node-1: timed out trying to allocate devices")


def test_node_labels_select_slices_with_node_selectors_and_all_nodes() -> None:
    zone_a = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}
    slices = [
        resource_slice("net", [device("nic-a")], pool="fabric-a", nodeSelector=zone_a),
        resource_slice("all", [device("shared")], pool="fabric-z", allNodes=True),
    ]
    state = cluster(slices, [device_class("any", driver=None)])
    outcome = allocate(state, claim("c", exact("r", "any", count=2)), NODE)
    assert devices_of(outcome) == ["nic-a", "shared"]
    assert isinstance(outcome, Allocation)
    assert outcome.claims[0].node_selector == {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
    }
    other_zone = Node("node-2", {"zone": "b"})
    assert devices_of(allocate(state, claim("c", exact("r", "any")), other_zone)) == ["shared"]
    assert isinstance(allocate(state, claim("c", exact("r", "any")), Node("n", {})), Allocation)
    only_all = allocate(state, claim("c", exact("r", "any")), other_zone)
    assert isinstance(only_all, Allocation) and only_all.claims[0].node_selector is None
