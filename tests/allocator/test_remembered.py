"""What a ClusterState remembers between calls (slice index, pools, counters) never changes an answer."""

from __future__ import annotations

import dataclasses

import pytest

from dra_driver.errors import ConfigError
from dra_driver.structured import Allocation, Node, allocate
from dra_driver.structured import counters as counter_math
from dra_driver.structured.model import AllocatedState
from dra_driver.structured.pools import Pool, gather_pools
from tests.allocator.builders import (
    DRIVER,
    NODE,
    allocated,
    claim,
    cluster,
    consumes,
    counter_set,
    device,
    exact,
    gpus,
    resource_slice,
    result,
)

OTHER = Node("node-2", {"kubernetes.io/hostname": "node-2", "zone": "b"})
ZONE_A = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}


def shape(pools: tuple[Pool, ...]) -> list[tuple[object, ...]]:
    return [
        (str(p.id), [s.name for s in p.slices], [s.name for s in p.other_slices], p.incomplete, p.invalid, p.seen)
        for p in pools
    ]


def devices_of(outcome: object) -> list[str]:
    assert isinstance(outcome, Allocation), outcome
    return [r.device for r in outcome.results]


def test_a_nodes_pools_are_the_same_whether_read_from_the_index_or_from_every_slice() -> None:
    state = cluster(
        [
            resource_slice("mine", gpus(2)),
            resource_slice("theirs", gpus(2, "remote"), node="node-2", pool="node-2"),
            resource_slice("everywhere", gpus(1, "fabric"), node=None, pool="fabric", allNodes=True),
            resource_slice("zone-a", gpus(1, "zonal"), node=None, pool="zonal", nodeSelector=ZONE_A),
            resource_slice("split-1", gpus(1, "split"), pool="split", count=2),
            resource_slice("split-2", gpus(1, "split-far"), node="node-2", pool="split", count=2),
            resource_slice("half", gpus(1, "half"), pool="half", count=2),
        ]
    )
    for node in (NODE, OTHER, NODE):
        assert shape(gather_pools(state, node)) == shape(gather_pools(list(state.slices), node))
    assert [str(p.id) for p in gather_pools(state, NODE)] == [
        f"{DRIVER}/fabric",
        f"{DRIVER}/half",
        f"{DRIVER}/node-1",
        f"{DRIVER}/split",
        f"{DRIVER}/zonal",
    ]


def test_slices_with_equal_names_keep_their_input_order_between_named_and_unnamed_slices() -> None:
    named = resource_slice("s", [device("named")], pool="p", count=2)
    unnamed = resource_slice("s", [device("unnamed")], node=None, pool="p", count=2, allNodes=True)
    assert devices_of(allocate(cluster([named, unnamed]), claim("c", exact("gpu")), NODE)) == ["named"]
    assert devices_of(allocate(cluster([unnamed, named]), claim("c", exact("gpu")), NODE)) == ["unnamed"]


def test_nodes_that_see_the_same_slices_share_one_pool_and_get_the_same_answer() -> None:
    state = cluster([resource_slice("everywhere", gpus(2), node=None, pool="fabric", allNodes=True)])
    (mine,), (theirs,) = gather_pools(state, NODE), gather_pools(state, OTHER)
    assert mine is theirs
    assert devices_of(allocate(state, claim("c", exact("gpu")), NODE)) == ["gpu-0"]
    assert devices_of(allocate(state, claim("c", exact("gpu")), OTHER)) == ["gpu-0"]


def test_counters_left_are_worked_out_again_for_another_allocated_state() -> None:
    slices = [
        resource_slice("counters", shared_counters=[counter_set("gpu-0", memory="40Gi")], count=2),
        resource_slice("s", [device("a", consumesCounters=[consumes("gpu-0", memory="30Gi")])], count=2),
    ]
    held = cluster(slices, allocated_claims=[allocated("held", result("a"))])
    (pool,) = gather_pools(held, NODE)
    assert counter_math.available(pool, held.allocated)["gpu-0"]["memory"] == 10 * 2**30 * 10**9
    assert counter_math.available(pool, AllocatedState())["gpu-0"]["memory"] == 40 * 2**30 * 10**9
    free = dataclasses.replace(held, allocated=AllocatedState())
    assert devices_of(allocate(free, claim("c", exact("gpu")), NODE)) == ["a"]
    assert not isinstance(allocate(held, claim("c", exact("gpu")), NODE), Allocation)


def test_an_overdrawn_counter_blocks_devices_that_do_not_consume_it() -> None:
    slices = [
        resource_slice("counters", shared_counters=[counter_set("gpu-0", memory="40Gi", compute="7")], count=2),
        resource_slice(
            "s",
            [
                device("big", consumesCounters=[consumes("gpu-0", memory="40Gi")]),
                device("big-too", consumesCounters=[consumes("gpu-0", memory="40Gi")]),
                device("compute-only", consumesCounters=[consumes("gpu-0", compute="1")]),
            ],
            count=2,
        ),
    ]
    state = cluster(slices, allocated_claims=[allocated("a", result("big")), allocated("b", result("big-too"))])
    (pool,) = gather_pools(state, NODE)
    consumed = {"gpu-0": {"compute": 1 * 10**9}}
    assert counter_math.fits(pool, state.allocated, consumed) is False
    assert counter_math.exceeded(counter_math.available(pool, state.allocated), consumed) == [("gpu-0", "memory")]
    assert counter_math.fits(pool, AllocatedState(), consumed) is True
    assert not isinstance(allocate(state, claim("c", exact("gpu")), NODE), Allocation)


def test_a_device_view_is_built_only_when_a_selector_looks_at_the_device() -> None:
    # the selector reads an attribute with a value no other test uses, so its memo cannot answer for gpu-0
    selector = 'device.attributes["gpu.dra-driver.dev"].model == "view-test-model"'
    state = cluster([resource_slice("s", gpus(3, model="view-test-model"))])
    assert devices_of(allocate(state, claim("c", exact("gpu", "gpu", None, selector)), NODE)) == ["gpu-0"]
    built = ["view" in vars(d) for d in state.slices[0].devices]
    assert built == [True, False, False]
    assert state.slices[0].devices[1].view.name == "gpu-1"


def test_devices_with_equal_selected_fields_share_one_evaluation() -> None:
    selector = 'device.attributes["gpu.dra-driver.dev"].model == "shared-eval-model"'
    state = cluster([resource_slice("s", gpus(4, model="shared-eval-model") + gpus(1, "other", model="x"))])
    for n in (1, 2, 4):
        assert len(devices_of(allocate(state, claim("c", exact("gpu", "gpu", n, selector)), NODE))) == n
    assert ["view" in vars(d) for d in state.slices[0].devices] == [True, False, False, False, False]
    outcome = allocate(state, claim("c", exact("gpu", "gpu", 5, selector)), NODE)
    assert not isinstance(outcome, Allocation)  # "other" (model x) is evaluated apart and does not match
    assert ["view" in vars(d) for d in state.slices[0].devices] == [True, False, False, False, True]


def test_malformed_attributes_are_refused_when_parsing_not_when_a_selector_first_reads_them() -> None:
    with pytest.raises(ConfigError, match="attributes must map names to DeviceAttribute objects"):
        cluster([resource_slice("s", [device("gpu-0", {"index": 0})])])
