"""allocationMode All and firstAvailable (prioritized alternatives)."""

from __future__ import annotations

from dra_driver.structured import Allocation, Failed, Unsatisfiable, allocate
from dra_driver.structured.reasons import NotEnoughDevices
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
    first_available,
    gpus,
    resource_slice,
    result,
    sub,
)

SMALL = f'device.attributes["{DRIVER}"].mem == 40'
BIG = f'device.attributes["{DRIVER}"].mem == 80'


def pairs(outcome: object) -> list[tuple[str, str]]:
    assert isinstance(outcome, Allocation), outcome
    return [(r.request, r.device) for r in outcome.results]


def test_all_mode_takes_every_matching_device() -> None:
    state = cluster([resource_slice("s", gpus(3))])
    assert pairs(allocate(state, claim("c", exact("gpu", allocationMode="All")), NODE)) == [
        ("gpu", "gpu-0"),
        ("gpu", "gpu-1"),
        ("gpu", "gpu-2"),
    ]


def test_all_mode_fails_when_a_matching_device_is_in_use() -> None:
    state = cluster([resource_slice("s", gpus(3))], allocated_claims=[allocated("old", result("gpu-1"))])
    outcome = allocate(state, claim("c", exact("gpu", allocationMode="All")), NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert NotEnoughDevices("gpu", 3, 2, 3) in outcome.reasons


def test_all_mode_without_matching_devices_is_unsatisfiable() -> None:
    outcome = allocate(cluster([resource_slice("s", [])]), claim("c", exact("gpu", allocationMode="All")), NODE)
    assert isinstance(outcome, Unsatisfiable)


def test_all_mode_with_an_incomplete_pool_on_the_node_fails_scheduling() -> None:
    state = cluster([resource_slice("s", gpus(2)), resource_slice("t", gpus(1, "x"), pool="other", count=2)])
    outcome = allocate(state, claim("c", exact("gpu", allocationMode="All")), NODE)
    assert isinstance(outcome, Failed)
    assert (
        "asks for all devices, but resource pool gpu.dra-driver.dev/other is currently being updated" in outcome.message
    )
    assert isinstance(allocate(state, claim("c", exact("gpu", count=2)), NODE), Allocation)


def test_first_available_uses_the_first_alternative_that_fits() -> None:
    devices = [device("small-0", attributes(mem=40)), device("big-0", attributes(mem=80))]
    state = cluster([resource_slice("s", devices)])
    want = claim("c", first_available("gpu", sub("big", "gpu", 1, BIG), sub("small", "gpu", 1, SMALL)))
    assert pairs(allocate(state, want, NODE)) == [("gpu/big", "big-0")]


def test_first_available_falls_back_to_a_later_alternative() -> None:
    devices = [device("small-0", attributes(mem=40)), device("small-1", attributes(mem=40))]
    state = cluster([resource_slice("s", devices)])
    want = claim("c", first_available("gpu", sub("big", "gpu", 1, BIG), sub("two-small", "gpu", 2, SMALL)))
    assert pairs(allocate(state, want, NODE)) == [("gpu/two-small", "small-0"), ("gpu/two-small", "small-1")]


def test_first_available_alternative_is_revisited_when_a_later_request_needs_its_device() -> None:
    devices = [device("big-0", attributes(mem=80)), device("small-0", attributes(mem=40))]
    state = cluster([resource_slice("s", devices)])
    want = claim(
        "c",
        first_available("any", sub("big", "gpu", 1, BIG), sub("small", "gpu", 1, SMALL)),
        exact("must-big", "gpu", 1, BIG),
    )
    assert pairs(allocate(state, want, NODE)) == [("any/small", "small-0"), ("must-big", "big-0")]


def test_first_available_skips_an_alternative_that_would_exceed_32_results() -> None:
    state = cluster([resource_slice("s", gpus(40))])
    want = claim("c", exact("base", count=30), first_available("more", sub("many", count=4), sub("few", count=2)))
    outcome = allocate(state, want, NODE)
    assert isinstance(outcome, Allocation)
    assert [r.request for r in outcome.results][-2:] == ["more/few", "more/few"]


def test_subrequest_classes_must_exist() -> None:
    state = cluster([resource_slice("s", gpus(1))], [device_class("gpu")])
    outcome = allocate(state, claim("c", first_available("r", sub("a", "gpu"), sub("b", "missing"))), NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert outcome.message == "request r/b: device class missing does not exist"


def test_requests_with_derived_attributes_fail_scheduling() -> None:
    derived = [{"name": "x", "expression": "1"}]
    outcome = allocate(
        cluster([resource_slice("s", gpus(1))]), claim("c", exact("gpu", derivedAttributes=derived)), NODE
    )
    assert isinstance(outcome, Failed) and "cannot handle request with derived attributes" in outcome.message
