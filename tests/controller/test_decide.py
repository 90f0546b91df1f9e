"""The planner's decisions on simulated machines, their slices built by the plugin's own builder."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace

from api import gpumodes
from api.partitioning import Mig, TimeSlice, Whole
from controller.planner import Policy, Why, decide
from controller.planner.candidates import place_layout
from controller.planner.world import HISTORY_ANNOTATION
from dra_driver.inventory import Inventory
from dra_driver.resourceslice.capabilities import Capabilities
from tests.controller.conftest import T0_S, Cluster, allocated, claim

Inv = Callable[..., Inventory]
NOW = T0_S + 60


def _timeslice_queue(c: Cluster, n: int = 3) -> None:
    for i in range(n):
        c.pending(f"p{i}", claim(f"c{i}"))


def test_an_idle_whole_gpu_becomes_timeslice_for_three_waiting_replicas(inventory: Inv) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    _timeslice_queue(c)
    d = decide(c.world(), Policy(), NOW)
    assert [x.describe() for x in d.changes] == ["node-1 gpu-0: whole → timeslice:4 for 3 pending claims"]
    assert d.changes[0].target.mode == TimeSlice(4)
    assert d.changes[0].claims == ("default/c0", "default/c1", "default/c2")
    assert not d.unhelped


def test_a_gpu_holding_an_allocated_claim_is_never_changed(inventory: Inv) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    c.claims.append(allocated(claim("running", "gpu"), "node-1", "gpu-0"))
    _timeslice_queue(c)
    d = decide(c.world(), Policy(), NOW)
    assert d.changes == ()
    assert {(u.claim, u.why) for u in d.unhelped} == {(f"default/c{i}", Why.GPU_BUSY) for i in range(3)}


def test_demand_goes_to_the_idle_gpu_even_where_busy_ones_come_first(inventory: Inv) -> None:
    c = Cluster()
    c.node("node-1", inventory("dgx-a100"))
    c.claims += [allocated(claim(f"run{g}", "gpu"), "node-1", f"gpu-{g}") for g in range(7)]
    _timeslice_queue(c, 8)
    d = decide(c.world(), Policy(), NOW)
    assert [(x.gpu_index, str(x.target), len(x.claims)) for x in d.changes] == [(7, "timeslice:8", 8)]


def test_claims_the_scheduler_can_place_already_need_no_change(inventory: Inv) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"), {0: TimeSlice(4)})
    _timeslice_queue(c)
    d = decide(c.world(), Policy(), NOW)
    assert d.changes == () and d.schedulable == ("default/c0", "default/c1", "default/c2")


def test_young_claims_are_left_to_the_scheduler(inventory: Inv) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    _timeslice_queue(c)
    d = decide(c.world(), Policy(pending_grace_s=120), NOW)
    assert d.changes == () and len(d.young) == 3


def test_nodes_without_the_opt_in_label_are_not_changed(inventory: Inv) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"), opted_in=False)
    _timeslice_queue(c)
    d = decide(c.world(), Policy(), NOW)
    assert d.changes == () and {u.why for u in d.unhelped} == {Why.NOT_OPTED_IN}
    assert decide(c.world(), Policy(node_selector=()), NOW).changes  # an empty selector opts every node in


def test_a_node_keeps_its_minimum_of_whole_gpus(inventory: Inv) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    _timeslice_queue(c)
    d = decide(c.world(), Policy(min_whole_gpus_per_node=1), NOW)
    assert d.changes == () and {u.why for u in d.unhelped} == {Why.MIN_WHOLE}


def test_changes_per_interval_are_limited_and_the_rest_say_so(inventory: Inv) -> None:
    c = Cluster()
    for n in ("node-1", "node-2"):
        c.node(n, inventory("single-a100"))
    _timeslice_queue(c, 16)
    d = decide(c.world(), Policy(max_changes_per_interval=1), NOW)
    assert len(d.changes) == 1 and len(d.changes[0].claims) == 8
    assert {u.why for u in d.unhelped} == {Why.RATE_LIMITED} and len(d.unhelped) == 8
    assert len(decide(c.world(), Policy(max_changes_per_interval=2), NOW).changes) == 2


def _modes_object(node: str, uuid: str, mode: str, changed_at: float, applied: bool) -> dict[str, object]:
    spec = gpumodes.parse_spec({"gpus": [{"uuid": uuid, "mode": mode}]})
    obj = gpumodes.render_object(node, spec)
    obj["metadata"] = {
        "name": node,
        "generation": 1,
        "annotations": {HISTORY_ANNOTATION: json.dumps({uuid: changed_at})},
    }
    if applied:
        gpu = {"uuid": uuid, "mode": mode, "state": "Applied", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        obj["status"] = {"observedGeneration": 1, "gpus": [gpu]}
    return obj


def test_a_change_in_flight_is_waited_for_not_repeated(inventory: Inv) -> None:
    c = Cluster()
    inv = inventory("single-a100")
    c.node("node-1", inv)
    c.node_modes.append(_modes_object("node-1", inv.gpus[0].uuid, "timeslice:4", NOW - 1000, applied=False))
    _timeslice_queue(c)
    d = decide(c.world(), Policy(), NOW)
    assert d.changes == ()
    assert [w for _, w in d.waiting] == ["node-1 gpu-0: change to timeslice:4 in progress"] * 3


def test_a_gpu_changed_recently_waits_out_its_cooldown(inventory: Inv) -> None:
    c = Cluster()
    inv = inventory("single-a100")
    c.node("node-1", inv)  # published whole: applied whole after an earlier change
    c.node_modes.append(_modes_object("node-1", inv.gpus[0].uuid, "whole", NOW - 100, applied=True))
    _timeslice_queue(c)
    d = decide(c.world(), Policy(cooldown_s=300), NOW)
    assert d.changes == () and {u.why for u in d.unhelped} == {Why.COOLDOWN}
    assert decide(c.world(), Policy(cooldown_s=300), NOW + 250).changes  # 350 s after the last change


def test_oscillating_demand_does_not_flap_a_gpu(inventory: Inv) -> None:
    """Demand flips every 30 s between three time-slice replicas and a MIG device for 20 minutes; the plugin
    applies every change at once. The GPU serves both in turn, but changes at most once per cooldown."""
    inv, inv_mig = inventory("single-a100"), inventory("single-a100", mig_enabled=True)
    uuid = inv.gpus[0].uuid
    policy = Policy(cooldown_s=300, pending_grace_s=5, max_changes_per_interval=10)
    mode, history, changes = "whole", 0.0, []
    for step in range(40):
        now = T0_S + 10 + 30 * step
        c = Cluster()
        if mode == "mig":
            c.node("node-1", inv_mig, {0: Mig()})
        else:
            c.node("node-1", inv, {0: TimeSlice(4) if mode.startswith("timeslice") else Whole()})
        if history:
            c.node_modes.append(_modes_object("node-1", uuid, mode, history, applied=True))
        if step % 2:
            c.pending("mig", claim(f"m{step}", "mig-1g-5gb"))
        else:
            _timeslice_queue(c)
        for change in decide(c.world(), policy, now).changes:
            mode, history = str(change.target), now
            changes.append(now)
    assert len(changes) >= 3  # it does serve the demand ...
    assert all(b - a >= 300 for a, b in itertools.pairwise(changes))  # ... never within the cooldown
    assert len(changes) <= 1 + (30 * 40) // 300


def test_mig_demand_without_partitionable_devices_gets_a_static_layout_that_fits_the_queue(inventory: Inv) -> None:
    c = Cluster(caps=replace(Capabilities(), partitionable_devices=False))
    inv = inventory("single-a100")
    c.node("node-1", inv)
    c.pending("a", claim("small-1", "mig-1g-5gb"))
    c.pending("b", claim("big", "mig-3g-20gb"))
    c.pending("c", claim("small-2", "mig-1g-5gb"))
    d = decide(c.world(), Policy(), NOW)
    assert len(d.changes) == 1
    target = d.changes[0].target
    assert target.mode == Mig() and sorted(target.layout) == ["1g.5gb", "1g.5gb", "3g.20gb"]
    assert set(d.changes[0].claims) == {"default/small-1", "default/small-2", "default/big"}
    assert place_layout(inventory("single-a100", mig_enabled=True).gpus[0], target.layout) is not None  # real table


def test_mig_demand_with_partitionable_devices_switches_to_mig(inventory: Inv) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    c.pending("a", claim("small", "mig-1g-5gb"))
    d = decide(c.world(), Policy(), NOW)
    assert [str(x.target) for x in d.changes] == ["mig"]


def test_modes_the_policy_leaves_out_are_never_chosen(inventory: Inv) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    _timeslice_queue(c)
    d = decide(c.world(), Policy(modes=frozenset({"whole", "mig"})), NOW)
    assert d.changes == () and {u.why for u in d.unhelped} == {Why.NO_MODE}


def test_a_pod_that_only_fits_a_node_it_does_not_select_gets_no_change(inventory: Inv) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    c.pending("p", claim("c"), node_selector={"zone": "elsewhere"})
    assert decide(c.world(), Policy(), NOW).changes == ()


def test_dry_run_is_carried_into_the_decision(inventory: Inv) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    _timeslice_queue(c)
    d = decide(c.world(), Policy(dry_run=True), NOW)
    assert d.dry_run and d.changes and d.lines()[0].startswith("would change: node-1 gpu-0")


def test_tainted_gpus_keep_their_taints_in_a_candidate_mode(inventory: Inv) -> None:
    """A NoSchedule taint on an idle GPU (say, an XID) stays on the replicas it would publish: no change is made
    for claims that do not tolerate it, and alike nodes without the taint still count as different."""
    c = Cluster()
    inv = inventory("single-a100")
    c.node("node-1", inv)
    c.node("node-2", inv)
    _timeslice_queue(c)
    world = c.world()
    tainted = [dict(s) for s in world.slices]
    for s in tainted:
        if s["spec"]["nodeName"] == "node-1":
            taint = {
                "key": "gpu.dra-driver.dev/xid",
                "value": "79",
                "effect": "NoSchedule",
                "timeAdded": "2026-01-01T00:00:00Z",
            }
            s["spec"] = {**s["spec"], "devices": [{**d, "taints": [taint]} for d in s["spec"]["devices"]]}
    d = decide(replace(world, slices=tainted), Policy(), NOW)
    assert [x.node for x in d.changes] == ["node-2"]
