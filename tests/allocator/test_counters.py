"""Partitionable devices: shared counters make MIG-like placements mutually exclusive."""

from __future__ import annotations

from typing import Any

from dra_driver.structured import Allocation, ClusterState, Unsatisfiable, allocate
from dra_driver.structured.reasons import CountersExhausted, NotEnoughDevices
from tests.allocator.builders import (
    DRIVER,
    NODE,
    allocated,
    attributes,
    claim,
    cluster,
    consumes,
    counter_set,
    device,
    device_class,
    exact,
    resource_slice,
    result,
)

SLICES = [f"memory-slice-{i}" for i in range(8)]


def gpu_counters(name: str = "gpu-0") -> dict[str, Any]:
    return counter_set(name, compute="7", memory="40Gi", **{s.replace("-", "_"): "1" for s in SLICES})


def mig(profile: str, placement: int, size: int, memory: str, counters: str = "gpu-0") -> dict[str, Any]:
    used = {f"memory_slice_{i}": "1" for i in range(placement, placement + size)}
    return device(
        f"gpu-0-mig-{profile}-{placement}",
        attributes(profile=profile, placement=placement),
        consumesCounters=[consumes(counters, compute=str(min(size, 7)), memory=memory, **used)],
    )


def whole_gpu() -> dict[str, Any]:
    used = {s.replace("-", "_"): "1" for s in SLICES}
    return device(
        "gpu-0", attributes(profile="whole"), consumesCounters=[consumes("gpu-0", compute="7", memory="40Gi", **used)]
    )


def mig_devices() -> list[dict[str, Any]]:
    return [
        whole_gpu(),
        *(mig("1g.5gb", p, 1, "5Gi") for p in range(8)),
        *(mig("2g.10gb", p, 2, "10Gi") for p in (0, 2, 4)),
    ]


def profile_classes() -> list[dict[str, Any]]:
    return [device_class(p, f'device.attributes["{DRIVER}"].profile == "{p}"') for p in ("whole", "1g.5gb", "2g.10gb")]


def state_with(devices: list[dict[str, Any]], held: list[str], separate_counters: bool = False) -> ClusterState:
    if separate_counters:
        slices = [
            resource_slice("a-counters", shared_counters=[gpu_counters()], count=2),
            resource_slice("b-devices", devices, count=2),
        ]
    else:
        slices = [
            resource_slice("devices", devices, count=2),
            resource_slice("counters", shared_counters=[gpu_counters()], count=2),
        ]
    claims = [allocated(f"held-{i}", result(d)) for i, d in enumerate(held)]
    return cluster(slices, profile_classes(), claims)


def one(state: ClusterState, device_class: str) -> str | None:
    outcome = allocate(state, claim("c", exact("r", device_class)), NODE)
    if isinstance(outcome, Allocation):
        return outcome.results[0].device
    assert isinstance(outcome, Unsatisfiable), outcome
    return None


def test_seven_single_slice_partitions_allocate_and_the_eighth_runs_out_of_compute() -> None:
    held: list[str] = []
    for _ in range(7):
        picked = one(state_with(mig_devices(), held), "1g.5gb")
        assert picked is not None
        held.append(picked)
    assert held == [f"gpu-0-mig-1g.5gb-{p}" for p in range(7)]
    outcome = allocate(state_with(mig_devices(), held), claim("c", exact("r", "1g.5gb")), NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert NotEnoughDevices("r", 1, 0, 8) in outcome.reasons
    assert CountersExhausted("r", f"{DRIVER}/node-1", "gpu-0", ("compute",), 1) in outcome.reasons


def test_whole_gpu_cannot_be_allocated_while_any_partition_is() -> None:
    assert one(state_with(mig_devices(), []), "whole") == "gpu-0"
    assert one(state_with(mig_devices(), ["gpu-0-mig-1g.5gb-5"]), "whole") is None
    outcome = allocate(state_with(mig_devices(), ["gpu-0-mig-1g.5gb-5"]), claim("c", exact("r", "whole")), NODE)
    assert isinstance(outcome, Unsatisfiable)
    (exhausted,) = [r for r in outcome.reasons if isinstance(r, CountersExhausted)]
    assert exhausted.counters == ("compute", "memory", "memory-slice-5")


def test_partitions_cannot_be_allocated_while_the_whole_gpu_is() -> None:
    assert one(state_with(mig_devices(), ["gpu-0"]), "1g.5gb") is None
    assert one(state_with(mig_devices(), ["gpu-0"]), "2g.10gb") is None


def test_overlapping_placements_exclude_each_other() -> None:
    state = state_with(mig_devices(), ["gpu-0-mig-2g.10gb-0"])
    assert one(state, "1g.5gb") == "gpu-0-mig-1g.5gb-2"
    assert one(state, "2g.10gb") == "gpu-0-mig-2g.10gb-2"


def test_one_claim_cannot_take_overlapping_partitions() -> None:
    state = state_with(mig_devices(), [])
    outcome = allocate(state, claim("c", exact("big", "2g.10gb"), exact("small", "1g.5gb", 2)), NODE)
    assert isinstance(outcome, Allocation)
    assert [r.device for r in outcome.results] == ["gpu-0-mig-2g.10gb-0", "gpu-0-mig-1g.5gb-2", "gpu-0-mig-1g.5gb-3"]


def test_counters_may_live_in_a_separate_slice_of_the_pool() -> None:
    state = state_with(mig_devices(), ["gpu-0-mig-1g.5gb-0"], separate_counters=True)
    assert one(state, "1g.5gb") == "gpu-0-mig-1g.5gb-1"
    assert one(state, "whole") is None


def test_counter_slice_on_no_node_still_completes_the_pool() -> None:
    slices = [
        resource_slice("counters", shared_counters=[gpu_counters()], count=2, node="elsewhere"),
        resource_slice("devices", mig_devices(), count=2),
    ]
    state = cluster(slices, profile_classes(), [allocated("held", result("gpu-0"))])
    assert one(state, "1g.5gb") is None
    assert one(cluster(slices, profile_classes()), "1g.5gb") == "gpu-0-mig-1g.5gb-0"


def test_missing_counter_slice_leaves_the_pool_incomplete() -> None:
    state = cluster([resource_slice("devices", mig_devices(), count=2)], profile_classes())
    assert one(state, "1g.5gb") is None


def test_counters_of_a_device_rejected_for_its_taint_are_given_back() -> None:
    # Kubernetes 1.37.2 rolls a rejected candidate back completely (kubernetes#140431); earlier releases kept
    # the counters of "tainted" taken, and then "fine" did not fit either.
    taint = {"key": "broken", "effect": "NoSchedule"}
    devices = [
        device("tainted", consumesCounters=[consumes("gpu-0", compute="7")], taints=[taint]),
        device("fine", consumesCounters=[consumes("gpu-0", compute="7")]),
    ]
    slices = [resource_slice("s", devices, count=2), resource_slice("t", shared_counters=[gpu_counters()], count=2)]
    outcome = allocate(cluster(slices), claim("c", exact("gpu")), NODE)
    assert isinstance(outcome, Allocation) and outcome.results[0].device == "fine"


def test_counters_of_a_device_rejected_by_a_constraint_are_given_back() -> None:
    # Each GPU has one counter set; the claim wants two partitions of one GPU. The first GPU has room for
    # one only, so the search must try (and reject) candidates there before settling on the second GPU.
    def part(gpu: int, p: int) -> dict[str, Any]:
        return device(
            f"gpu-{gpu}-p{p}",
            attributes(gpu=gpu),
            consumesCounters=[consumes(f"gpu-{gpu}", compute="4")],
        )

    slices = [
        resource_slice("a", [part(0, 0), part(0, 1), part(1, 0), part(1, 1)], count=2),
        resource_slice(
            "b", shared_counters=[counter_set("gpu-0", compute="4"), counter_set("gpu-1", compute="8")], count=2
        ),
    ]
    want = claim("c", exact("a"), exact("b"), constraints=[{"matchAttribute": f"{DRIVER}/gpu"}])
    outcome = allocate(cluster(slices), want, NODE)
    assert isinstance(outcome, Allocation)
    assert [r.device for r in outcome.results] == ["gpu-1-p0", "gpu-1-p1"]


def test_a_slice_with_devices_and_counters_is_a_counter_slice() -> None:
    # The API allows only one of devices and sharedCounters per slice; the scheduler treats such a slice
    # as holding counters only, so its devices are not candidates.
    state = cluster([resource_slice("s", [device("d")], shared_counters=[gpu_counters()])])
    outcome = allocate(state, claim("c", exact("gpu")), NODE)
    assert isinstance(outcome, Unsatisfiable)
