"""GPUs rebuilt from the slices the plugin publishes: facts equal to discovery's, the mode each publishes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from api.partitioning import GpuMode, Mig, Shared, TimeSlice, Whole
from controller.planner.candidates import Target, place_layout, with_gpu
from controller.planner.view import ViewMemo, node_views
from dra_driver.inventory import Inventory
from dra_driver.resourceslice import render
from dra_driver.resourceslice.capabilities import CURRENT, Capabilities
from dra_driver.slices.builder import build_pool
from tests.controller.conftest import DRIVER

Inv = Callable[..., Inventory]


def _slices(inv: Inventory, modes: dict[int, GpuMode], caps: Capabilities = CURRENT) -> list[dict[str, Any]]:
    return render.render(build_pool(inv, modes, caps, DRIVER, "n"), 3, "v1")


def test_each_gpu_reads_back_its_mode_and_the_facts_discovery_found(inventory: Inv) -> None:
    inv = inventory("a100-80gb-a30")
    view = node_views(_slices(inv, {0: TimeSlice(4), 1: Shared(), 2: Whole()}), DRIVER)["n"]
    assert [g.mode for g in view.gpus] == [TimeSlice(4), Shared(), Whole(), Whole()]
    for seen, real in zip(view.gpus, inv.gpus, strict=True):
        assert replace(seen.gpu, serial=real.serial, pci_device_id=real.pci_device_id, compute_mode=real.compute_mode,
                       mig_capable=real.mig_capable, mig_profiles=real.mig_profiles) == real  # fmt: skip
    assert view.generation == 3 and view.driver_version == "580.95.5"


def test_static_mig_reads_back_its_layout_and_partitionable_mig_has_none(inventory: Inv) -> None:
    inv = inventory("single-a100", mig_enabled=True)
    made = place_layout(inv.gpus[0], ["3g.20gb", "1g.5gb", "2g.10gb"])  # instances as the plugin would make them
    with_instances = replace(inv, gpus=(replace(inv.gpus[0], mig_devices=made or ()),))
    static = replace(Capabilities(), partitionable_devices=False)
    gpu = node_views(_slices(with_instances, {0: Mig()}, static), DRIVER)["n"].gpus[0]
    assert gpu.mode == Mig() and gpu.layout == ("3g.20gb", "2g.10gb", "1g.5gb")  # by placement: 0, 4, 6
    assert node_views(_slices(inv, {0: Mig()}), DRIVER)["n"].gpus[0].layout == ()


def test_a_gpu_swapped_to_another_mode_publishes_what_the_plugin_would(inventory: Inv) -> None:
    inv = inventory("dgx-a100")
    view = node_views(_slices(inv, {}), DRIVER)["n"]
    slices = with_gpu(view, view.gpus[3], Target(TimeSlice(2)), Capabilities())
    assert slices is not None
    names = sorted(d["name"] for s in slices for d in s["spec"].get("devices") or ())
    plugin = _slices(inv, {3: TimeSlice(2)})
    assert names == sorted(d["name"] for s in plugin for d in s["spec"].get("devices") or ())
    assert {s["spec"]["pool"]["resourceSliceCount"] for s in slices} == {len(slices)}


def test_a_whole_gpu_shows_whether_its_mig_mode_is_on(inventory: Inv) -> None:
    on = node_views(_slices(inventory("single-a100", mig_enabled=True), {}), DRIVER)["n"].gpus[0]
    off = node_views(_slices(inventory("single-a100"), {}), DRIVER)["n"].gpus[0]
    assert (on.mode, on.mig_on, off.mode, off.mig_on) == (Whole(), True, Whole(), False)


def _versioned(slices: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    return [
        {**s, "metadata": {**s["metadata"], "uid": f"u{i}", "resourceVersion": version}} for i, s in enumerate(slices)
    ]


def test_a_remembered_view_is_reused_until_a_slice_of_its_node_changes(inventory: Inv) -> None:
    inv = inventory("a100-80gb-a30")
    memo = ViewMemo()
    first = node_views(_versioned(_slices(inv, {0: TimeSlice(4)}), "1"), DRIVER, memo)["n"]
    assert node_views(_versioned(_slices(inv, {0: TimeSlice(4)}), "1"), DRIVER, memo)["n"] is first
    assert memo.builds == 1
    changed = node_views(_versioned(_slices(inv, {0: Shared()}), "2"), DRIVER, memo)["n"]
    assert memo.builds == 2 and changed.gpus[0].mode == Shared()
    assert [g.mode for g in changed.gpus] == [g.mode for g in node_views(_slices(inv, {0: Shared()}), DRIVER)["n"].gpus]


def test_slices_without_uid_or_version_are_never_remembered(inventory: Inv) -> None:
    memo = ViewMemo()
    node_views(_slices(inventory("single-a100"), {}), DRIVER, memo)
    node_views(_slices(inventory("single-a100"), {}), DRIVER, memo)
    assert memo.builds == 0
