"""The pure decision: can this GPU change now, what must its hardware do, and the status that reports it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from api.gpumodes import GpuModeSpec, GpuModeStatus, NodeGpuModesStatus
from api.partitioning import Mig, Shared, TimeSlice, Whole
from dra_driver.inventory import Gpu, Inventory
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from kubelet_plugin.modes import Change, Keep, Refuse, Wait, decide, gpu_status, node_status, plan_layout
from tests.conftest import MachineFactory

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


@pytest.fixture
def gpu(machine: MachineFactory) -> Callable[..., Gpu]:
    def make(profile: str = "dgx-a100", mig_enabled: bool = True) -> Gpu:
        sim = machine(profile, init=False, mig_enabled=mig_enabled)
        with Nvml() as nvml:
            inv: Inventory = discover(nvml, sim.sysfs_root())
        return inv.gpus[0]

    return make


def test_layout_is_placed_without_overlap_largest_first(gpu: Callable[..., Gpu]) -> None:
    g = gpu()
    planned = plan_layout(g, ("1g.5gb", "3g.20gb", "2g.10gb"))
    assert not isinstance(planned, str)
    assert [p for p, _ in planned] == ["1g.5gb", "3g.20gb", "2g.10gb"]  # in the order asked for
    used: set[int] = set()
    for name, start in planned:
        profile = g.mig_profile(name)
        assert profile is not None and any(p.start == start for p in profile.placements)
        size = next(p.size for p in profile.placements if p.start == start)
        assert not used & set(range(start, start + size))
        used |= set(range(start, start + size))


@pytest.mark.parametrize(
    ("layout", "words"),
    [
        (("3g.20gb", "9g.99gb"), "no MIG profile 9g.99gb"),
        (("7g.40gb", "1g.5gb"), "compute slices"),
        (("4g.20gb", "4g.20gb"), "compute slices"),
        (("3g.20gb",) * 3, "compute slices"),
    ],
)
def test_impossible_layout_says_why(gpu: Callable[..., Gpu], layout: tuple[str, ...], words: str) -> None:
    planned = plan_layout(gpu(), layout)
    assert isinstance(planned, str) and words in planned


def test_layout_within_compute_slices_but_without_free_memory_slices_is_refused(gpu: Callable[..., Gpu]) -> None:
    # 3 + 3 + 1 compute slices fit the A100's 7, but two 3g.20gb take all 8 memory slices (at 0 and 4)
    planned = plan_layout(gpu(), ("3g.20gb", "3g.20gb", "1g.5gb"))
    assert isinstance(planned, str) and "does not fit the memory slices" in planned
    assert not isinstance(plan_layout(gpu(), ("4g.20gb", "2g.10gb", "1g.5gb")), str)


def test_gpu_in_the_desired_mode_is_kept(gpu: Callable[..., Gpu]) -> None:
    g = gpu()
    spec = GpuModeSpec(g.uuid, Whole())
    assert decide(g, spec, spec, ["ns/a"], False) == Keep()


def test_busy_gpu_waits_naming_the_claims(gpu: Callable[..., Gpu]) -> None:
    g = gpu()
    decision = decide(g, GpuModeSpec(g.uuid, Whole()), GpuModeSpec(g.uuid, TimeSlice(4)), ["ns/b", "ns/a"], False)
    assert decision == Wait("claims ns/a, ns/b are allocated or prepared on it")


def test_timeslice_and_shared_need_mig_off_whole_leaves_it(gpu: Callable[..., Gpu]) -> None:
    g = gpu(mig_enabled=True)
    whole = GpuModeSpec(g.uuid, Whole())
    assert decide(g, whole, GpuModeSpec(g.uuid, TimeSlice(4)), [], True) == Change(False, None)
    assert decide(g, whole, GpuModeSpec(g.uuid, Shared()), [], True) == Change(False, None)
    assert decide(g, GpuModeSpec(g.uuid, Shared()), whole, [], True) == Change(None, None)
    assert decide(g, whole, GpuModeSpec(g.uuid, Mig()), [], True) == Change(True, None)


def test_timeslice_on_a_gpu_whose_mig_is_still_on_is_not_in_the_desired_state(gpu: Callable[..., Gpu]) -> None:
    g = gpu(mig_enabled=True)
    ts = GpuModeSpec(g.uuid, TimeSlice(2))
    assert decide(g, ts, ts, [], False) == Change(False, None)  # e.g. a reset is still pending


def test_mig_on_a_gpu_without_mig_is_refused(gpu: Callable[..., Gpu]) -> None:
    g = gpu("l4")
    decision = decide(g, GpuModeSpec(g.uuid, Whole()), GpuModeSpec(g.uuid, Mig()), [], False)
    assert isinstance(decision, Refuse) and "cannot do MIG" in decision.reason


def test_static_layout_is_refused_where_the_cluster_partitions_per_claim(gpu: Callable[..., Gpu]) -> None:
    g = gpu()
    desired = GpuModeSpec(g.uuid, Mig(), ("3g.20gb",))
    decision = decide(g, GpuModeSpec(g.uuid, Whole()), desired, [], True)
    assert isinstance(decision, Refuse) and "leave migLayout out" in decision.reason


def test_refusal_comes_before_waiting_for_claims(gpu: Callable[..., Gpu]) -> None:
    g = gpu()
    desired = GpuModeSpec(g.uuid, Mig(), ("9g.1gb",))
    assert isinstance(decide(g, GpuModeSpec(g.uuid, Whole()), desired, ["ns/a"], False), Refuse)


def test_static_layout_change_carries_the_planned_placements(gpu: Callable[..., Gpu]) -> None:
    g = gpu()
    decision = decide(g, GpuModeSpec(g.uuid, Whole()), GpuModeSpec(g.uuid, Mig(), ("7g.40gb",)), [], False)
    assert decision == Change(True, (("7g.40gb", 0),))


def test_transition_time_moves_only_when_state_or_reason_changes() -> None:
    u = "GPU-8f6c2b1e-0000-4000-8000-000000000000"
    first = gpu_status(None, u, GpuModeSpec(u, Whole()), "Pending", "claim ns/a is prepared", T0)
    assert first.last_transition_time == T0
    same = gpu_status(first, u, GpuModeSpec(u, Whole()), "Pending", "claim ns/a is prepared", T1)
    assert same.last_transition_time == T0
    applied = gpu_status(same, u, GpuModeSpec(u, TimeSlice(4)), "Applied", None, T1)
    assert applied.last_transition_time == T1 and applied.mode == TimeSlice(4)


def test_applied_condition_is_true_only_when_every_gpu_is_applied() -> None:
    u = "GPU-8f6c2b1e-0000-4000-8000-000000000000"
    ok = node_status(NodeGpuModesStatus(), 2, (GpuModeStatus(u, Whole(), "Applied", T0),), T0)
    assert ok.observed_generation == 2
    assert (ok.conditions[0].status, ok.conditions[0].reason, ok.conditions[0].observed_generation) == (
        "True",
        "AllApplied",
        2,
    )
    again = node_status(ok, 3, ok.gpus, T1)
    assert again.conditions[0].last_transition_time == T0
    refused = node_status(ok, 3, (GpuModeStatus(u, Whole(), "Refused", T1, reason="no such profile"),), T1)
    assert refused.conditions[0].status == "False" and "no such profile" in refused.conditions[0].message
    assert refused.conditions[0].last_transition_time == T1
