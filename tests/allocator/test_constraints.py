"""matchAttribute and distinctAttribute, including the backtracking they cause."""

from __future__ import annotations

from dra_driver.structured import Allocation, Failed, Unsatisfiable, allocate
from dra_driver.structured.reasons import ConstraintNotSatisfied
from tests.allocator.builders import (
    DRIVER,
    NODE,
    Version,
    attributes,
    claim,
    cluster,
    device,
    exact,
    first_available,
    resource_slice,
    sub,
)


def pairs(outcome: object) -> list[tuple[str, str]]:
    assert isinstance(outcome, Allocation), outcome
    return [(r.request, r.device) for r in outcome.results]


def numa_devices() -> list[dict[str, object]]:
    return [
        device("gpu-0", attributes(numa=0, kind="gpu")),
        device("gpu-1", attributes(numa=1, kind="gpu")),
        device("nic-1", attributes(numa=1, kind="nic")),
    ]


KIND = f'device.attributes["{DRIVER}"].kind'


def test_match_attribute_backtracks_to_a_device_with_a_matching_value() -> None:
    state = cluster([resource_slice("s", numa_devices())])
    want = claim(
        "c",
        exact("gpu", "gpu", 1, f'{KIND} == "gpu"'),
        exact("nic", "gpu", 1, f'{KIND} == "nic"'),
        constraints=[{"matchAttribute": f"{DRIVER}/numa"}],
    )
    assert pairs(allocate(state, want, NODE)) == [("gpu", "gpu-1"), ("nic", "nic-1")]


def test_match_attribute_only_applies_to_the_named_requests() -> None:
    state = cluster([resource_slice("s", numa_devices())])
    want = claim(
        "c",
        exact("gpu", "gpu", 1, f'{KIND} == "gpu"'),
        exact("nic", "gpu", 1, f'{KIND} == "nic"'),
        constraints=[{"matchAttribute": f"{DRIVER}/numa", "requests": ["gpu"]}],
    )
    assert pairs(allocate(state, want, NODE)) == [("gpu", "gpu-0"), ("nic", "nic-1")]


def test_unsatisfiable_match_attribute_is_named_in_the_reasons() -> None:
    devices = [device("gpu-0", attributes(numa=0)), device("gpu-1", attributes(numa=1))]
    state = cluster([resource_slice("s", devices)])
    want = claim("c", exact("a"), exact("b"), constraints=[{"matchAttribute": f"{DRIVER}/numa"}])
    outcome = allocate(state, want, NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert outcome.reasons == (
        ConstraintNotSatisfied(f"claim default/c: constraint #0 (matchAttribute {DRIVER}/numa on all requests)"),
    )


def test_devices_without_the_attribute_never_satisfy_a_constraint() -> None:
    state = cluster([resource_slice("s", [device("plain"), device("gpu-1", attributes(numa=1))])])
    want = claim("c", exact("a"), constraints=[{"matchAttribute": f"{DRIVER}/numa"}])
    assert pairs(allocate(state, want, NODE)) == [("a", "gpu-1")]


def test_match_attribute_compares_kind_and_value() -> None:
    devices = [device("s", attributes(v="1")), device("i", attributes(v=1)), device("i2", attributes(v=1))]
    state = cluster([resource_slice("sl", devices)])
    want = claim("c", exact("a", count=2), constraints=[{"matchAttribute": f"{DRIVER}/v"}])
    assert pairs(allocate(state, want, NODE)) == [("a", "i"), ("a", "i2")]


def test_versions_match_as_strings() -> None:
    devices = [device("a", attributes(v=Version("1.0.0+x"))), device("b", attributes(v=Version("1.0.0")))]
    state = cluster([resource_slice("s", devices)])
    want = claim("c", exact("r", count=2), constraints=[{"matchAttribute": f"{DRIVER}/v"}])
    assert isinstance(allocate(state, want, NODE), Unsatisfiable)


def test_distinct_attribute_picks_devices_with_different_values() -> None:
    devices = [device("a", attributes(numa=0)), device("b", attributes(numa=0)), device("c", attributes(numa=1))]
    state = cluster([resource_slice("s", devices)])
    want = claim("c", exact("x"), exact("y"), constraints=[{"distinctAttribute": f"{DRIVER}/numa"}])
    assert pairs(allocate(state, want, NODE)) == [("x", "a"), ("y", "c")]


def test_distinct_attribute_compares_every_device_of_one_request() -> None:
    devices = [
        device("a", attributes(numa=0)),
        device("b", attributes(numa=1)),
        device("c", attributes(numa=0)),
        device("d", attributes(numa=2)),
    ]
    state = cluster([resource_slice("s", devices)])
    want = claim("c", exact("x", count=3), constraints=[{"distinctAttribute": f"{DRIVER}/numa"}])
    assert pairs(allocate(state, want, NODE)) == [("x", "a"), ("x", "b"), ("x", "d")]
    four = claim("c", exact("x", count=4), constraints=[{"distinctAttribute": f"{DRIVER}/numa"}])
    assert isinstance(allocate(state, four, NODE), Unsatisfiable)


def test_constraints_may_name_a_subrequest() -> None:
    state = cluster([resource_slice("s", numa_devices())])
    want = claim(
        "c",
        first_available("gpu", sub("any", "gpu", 1, f'{KIND} == "gpu"')),
        exact("nic", "gpu", 1, f'{KIND} == "nic"'),
        constraints=[{"matchAttribute": f"{DRIVER}/numa", "requests": ["gpu/any", "nic"]}],
    )
    assert pairs(allocate(state, want, NODE)) == [("gpu/any", "gpu-1"), ("nic", "nic-1")]


def test_all_mode_device_breaking_a_constraint_fails_scheduling() -> None:
    devices = [device("gpu-0", attributes(numa=0)), device("gpu-1", attributes(numa=1))]
    state = cluster([resource_slice("s", devices)])
    want = claim("c", exact("all", allocationMode="All"), constraints=[{"matchAttribute": f"{DRIVER}/numa"}])
    outcome = allocate(state, want, NODE)
    assert isinstance(outcome, Failed)
    assert "because a claim constraint would not be satisfied" in outcome.message


def test_empty_constraint_fails_scheduling() -> None:
    state = cluster([resource_slice("s", numa_devices())])
    outcome = allocate(state, claim("c", exact("a"), constraints=[{"requests": ["a"]}]), NODE)
    assert isinstance(outcome, Failed) and "empty constraint" in outcome.message
