"""The slice builder: devices, counters and packing for every mode and cluster capability."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pynvml
import pytest

from api.partitioning import Mig, Shared, TimeSlice, Whole
from dra_driver.errors import ConfigError
from dra_driver.inventory import Inventory
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from dra_driver.resourceslice import quantity
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.model import Version
from dra_driver.resourceslice.render import render
from dra_driver.slices.builder import build_pool
from dra_driver.slices.devices import semver
from tests.conftest import MachineFactory
from tests.nvml_sim.helpers import create_full_ci, create_gi

Inv = Callable[..., Inventory]
DRIVER = "gpu.dra-driver.dev"
LEGACY = Capabilities(partitionable_devices=False, counters_in_own_slice=False, consumable_capacity=False)


def _discover() -> Inventory:
    with Nvml() as nvml:
        return discover(nvml)


def _all(inv: Inventory, mode: object) -> dict[int, object]:
    return {g.index: mode for g in inv.gpus}


def test_whole_mode_publishes_one_typed_device_per_gpu(inventory: Inv) -> None:
    inv = inventory("dgx-a100")
    pool = build_pool(inv, {}, Capabilities(), DRIVER, "node-a")
    devices = pool.devices()
    assert [d.name for d in devices] == [f"gpu-{i}" for i in range(8)]
    d = devices[3]
    assert d.attribute("type") == "gpu"
    assert d.attribute("uuid") == inv.gpu(3).uuid
    assert d.attribute("productName") == "NVIDIA A100-SXM4-40GB"
    assert d.attribute("cudaComputeCapability") == Version("8.0.0")
    assert d.attribute("driverVersion") == Version("580.95.5")
    assert d.attribute("resource.kubernetes.io/pciBusID") == "0000:4e:00.0"
    assert d.attribute("resource.kubernetes.io/pcieRoot") == "pci0000:40"  # shared with GPU 2 (sysfs)
    assert d.attribute("resource.kubernetes.io/numaNode") == 0
    assert dict(d.capacity)["memory"].value == "40192Mi"  # MIG is on: a whole-GPU claim gets the 7g.40gb instance
    assert len(pool.slices) == 1 and not d.consumes


def test_mig_mode_offers_every_placement_and_the_whole_gpu_consuming_all_counters(inventory: Inv) -> None:
    inv = inventory("single-a100")
    pool = build_pool(inv, {0: Mig()}, Capabilities(), DRIVER, "n")
    counters_slice, device_slice = pool.slices
    assert not counters_slice.devices and len(counters_slice.counter_sets) == 1
    counter_set = counters_slice.counter_sets[0]
    counters = dict(counter_set.counters)
    assert [counters[f"memory-slice-{i}"] for i in range(8)] == ["1"] * 8
    assert counters["compute-slices"] == "7"
    names = [d.name for d in device_slice.devices]
    assert len(names) == 7 + 7 + 4 + 3 + 2 + 1 + 1 + 1
    assert "gpu-0-mig-1g-5gb-6" in names and "gpu-0-mig-3g-20gb-4" in names and "gpu-0-mig-1g-5gb-me-0" in names
    assert names[0] == "gpu-0-mig-1g-5gb-6"  # small profiles fill from the top
    whole = device_slice.devices[-1]
    assert whole.name == "gpu-0" and dict(whole.consumes[0].counters) == counters
    three = next(d for d in device_slice.devices if d.name == "gpu-0-mig-3g-20gb-4")
    used = dict(three.consumes[0].counters)
    assert {k for k in used if k.startswith("memory-slice")} == {f"memory-slice-{i}" for i in range(4, 8)}
    assert used["memory"] == "19968Mi" and three.attribute("profile") == "3g.20gb" and three.attribute("placement") == 4


def test_mig_slices_respect_device_and_counter_set_limits(inventory: Inv) -> None:
    inv = inventory("dgx-h100")
    pool = build_pool(inv, _all(inv, Mig()), Capabilities(), DRIVER, "n")  # type: ignore[arg-type]
    assert all(len(s.devices) <= 64 and len(s.counter_sets) <= 8 for s in pool.slices)
    assert sum(len(s.devices) for s in pool.slices) == 8 * 26
    assert all(not (s.devices and s.counter_sets) for s in pool.slices)
    for s in pool.slices:  # a GPU's devices never straddle two slices
        gpus = {d.name.split("-")[1] for d in s.devices}
        assert all(sum(1 for d in s.devices if d.name.split("-")[1] == g) == 26 for g in gpus)


def test_every_kind_of_device_names_its_gpus_numa_node_and_pcie_root(inventory: Inv) -> None:
    inv = inventory("a100-80gb-a30")
    modes = {0: Mig(), 1: Whole(), 2: TimeSlice(2), 3: Shared()}
    devices = build_pool(inv, modes, Capabilities(), DRIVER, "n").devices()  # type: ignore[arg-type]
    assert {d.attribute("type") for d in devices} == {"gpu", "mig", "timeslice", "shared"}
    for d in devices:
        gpu = inv.gpu(int(d.attribute("index")))  # type: ignore[arg-type]
        assert gpu.numa_node is not None and gpu.pcie_root is not None
        assert d.attribute("resource.kubernetes.io/numaNode") == gpu.numa_node
        assert d.attribute("resource.kubernetes.io/pcieRoot") == gpu.pcie_root
    assert [g.pcie_root for g in inv.gpus] == ["pci0000:10", "pci0000:30", "pci0000:b0", "pci0000:c0"]


def test_without_sysfs_there_are_no_numa_node_and_pcie_root_attributes(machine: MachineFactory, tmp_path: Path) -> None:
    machine("l4", init=False)
    with Nvml() as nvml:
        inv = discover(nvml, tmp_path / "no-sysfs")
    (device, *_) = build_pool(inv, {}, Capabilities(), DRIVER, "n").devices()
    assert device.attribute("resource.kubernetes.io/pciBusID") == "0000:01:00.0"
    assert device.attribute("resource.kubernetes.io/numaNode") is None
    assert device.attribute("resource.kubernetes.io/pcieRoot") is None


def test_older_servers_get_counter_sets_inside_the_slice_of_their_devices(inventory: Inv) -> None:
    inv = inventory("dgx-a100")
    caps = Capabilities(counters_in_own_slice=False)
    pool = build_pool(inv, _all(inv, Mig()), caps, DRIVER, "n")  # type: ignore[arg-type]
    for s in pool.slices:
        referenced = {c.counter_set for d in s.devices for c in d.consumes}
        assert referenced == {cs.name for cs in s.counter_sets}


def test_without_partitionable_devices_existing_mig_devices_are_published(machine: MachineFactory) -> None:
    machine("single-a100")
    assert build_pool(_discover(), {0: Mig()}, LEGACY, DRIVER, "n").devices() == ()
    create_full_ci(create_gi(pynvml.nvmlDeviceGetHandleByIndex(0), 9, 4, 4))
    pool = build_pool(_discover(), {0: Mig()}, LEGACY, DRIVER, "n")
    (device,) = pool.devices()
    assert device.name == "gpu-0-mig-3g-20gb-4"
    assert str(device.attribute("uuid")).startswith("MIG-") and not device.consumes
    assert any("static MIG" in n for n in pool.notes)


def test_timeslice_replicas_exclude_the_whole_gpu_through_a_counter(inventory: Inv) -> None:
    inv = inventory("l4")
    pool = build_pool(inv, {1: TimeSlice(4)}, Capabilities(), DRIVER, "n")
    devices = {d.name: d for d in pool.devices()}
    assert [n for n in devices if n.startswith("gpu-1")] == [*(f"gpu-1-ts-{k}" for k in range(4)), "gpu-1"]
    assert dict(devices["gpu-1"].consumes[0].counters) == {"replicas": "4"}
    assert dict(devices["gpu-1-ts-2"].consumes[0].counters) == {"replicas": "1"}
    assert devices["gpu-1-ts-2"].attribute("type") == "timeslice"
    legacy = build_pool(inv, {1: TimeSlice(4)}, LEGACY, DRIVER, "n")
    assert [d.name for d in legacy.devices() if d.name.startswith("gpu-1")] == [f"gpu-1-ts-{k}" for k in range(4)]


def test_shared_mode_needs_consumable_capacity(inventory: Inv) -> None:
    inv = inventory("l4")
    (device, *_) = build_pool(inv, {0: Shared()}, Capabilities(), DRIVER, "n").devices()
    assert device.allow_multiple_allocations and device.name == "gpu-0-shared"
    policy = dict(device.capacity)["compute"].policy
    assert policy is not None and (policy.default, policy.max) == ("10", "100")
    with pytest.raises(ConfigError, match="needs consumable capacity"):
        build_pool(inv, {0: Shared()}, LEGACY, DRIVER, "n")


def test_mig_mode_on_gpus_that_cannot_do_it_degrades_with_a_note(inventory: Inv) -> None:
    inv = inventory("l4")
    pool = build_pool(inv, {0: Mig()}, Capabilities(), DRIVER, "n")
    assert pool.devices()[0].name == "gpu-0"
    assert any("cannot do MIG" in n for n in pool.notes)
    disabled = inventory("single-a100", mig_enabled=False)
    pool = build_pool(disabled, {0: Mig()}, Capabilities(), DRIVER, "n")
    assert [d.name for d in pool.devices()] == ["gpu-0"] and any("nvidia-smi -i 0 -mig 1" in n for n in pool.notes)


def test_lost_gpus_are_left_out_with_a_note(machine: MachineFactory) -> None:
    machine("dgx-a100", init=False).set_fault(6, "lost")
    pool = build_pool(_discover(), {}, Capabilities(), DRIVER, "n")
    assert "gpu-6" not in [d.name for d in pool.devices()] and len(pool.devices()) == 7
    assert any(n.startswith("GPU 6 not published") for n in pool.notes)


def test_building_is_deterministic_and_mixed_modes_keep_gpu_order(inventory: Inv) -> None:
    inv = inventory("a100-80gb-a30")
    modes = {0: Mig(), 1: Whole(), 2: TimeSlice(2), 3: Mig()}
    a = build_pool(inv, modes, Capabilities(), DRIVER, "n")  # type: ignore[arg-type]
    b = build_pool(inv, modes, Capabilities(), DRIVER, "n")  # type: ignore[arg-type]
    assert a == b and render(a, 1, "v1") == render(b, 1, "v1")
    names = [d.name for d in a.devices()]
    assert names.index("gpu-1") > names.index("gpu-0") and "gpu-3-mig-1g-6gb-3" in names


def test_an_empty_node_publishes_one_empty_slice(inventory: Inv) -> None:
    inv = inventory("l4")
    empty = Inventory(inv.driver_version, inv.cuda_driver_version, inv.nvml_version, ())
    pool = build_pool(empty, {}, Capabilities(), DRIVER, "n")
    assert len(pool.slices) == 1 and pool.devices() == ()


@pytest.mark.parametrize(
    ("value", "binary", "decimal"),
    [
        (42949672960, "40Gi", "42949672960"),
        (5100273664, "4864Mi", "5100273664"),
        (1000, "1000", "1k"),
        (98, "98", "98"),
        (0, "0", "0"),
    ],
)
def test_quantities_are_written_in_canonical_form(value: int, binary: str, decimal: str) -> None:
    assert quantity.binary(value) == binary
    assert quantity.decimal(value) == decimal
    assert quantity.parse(binary) == value == quantity.parse(decimal)


def test_nvml_versions_become_semver() -> None:
    assert semver("580.95.05") == Version("580.95.5")
    assert semver("9.0") == Version("9.0.0")
    assert semver("13.0") == Version("13.0.0")
