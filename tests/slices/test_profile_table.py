"""What a device advertises is what its prepare delivers, and the MIG counters agree with the profile table.

The reference is ``shared/hardware/mig-profiles.json`` (what real ``nvidia-smi mig -lgip/-lgipp`` print, per GPU
model); the simulated NVML serves the same table (``nvml_sim/gpu_models.json``), so a pool built from a discovered
simulated machine must carry exactly the reference's numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from api.partitioning import Mig
from dra_driver.gpu_facts import full_size_profile
from dra_driver.inventory import Gpu, Inventory, MigProfile, Placement
from dra_driver.kubeletplugin.protocol import ClaimRef
from dra_driver.resourceslice import quantity
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.model import Device
from dra_driver.slices import devices as dev
from dra_driver.slices.builder import build_pool
from kubelet_plugin.plan import Context, plan_claim
from kubelet_plugin.records import MigPartition, WholeGpu
from nvml_sim.hardware import MACHINE_PROFILES, gpu_models
from tools.import_gpu_models import DEFAULT_SOURCE

Inv = Callable[..., Inventory]
DRIVER = "gpu.dra-driver.dev"
MIB = 1 << 20
ENGINES = {  # reference field -> counter / capacity names (counter, capacity)
    "copy_engine_count": ("copy-engines", "copyEngines"),
    "decoder_count": ("decoders", "decoders"),
    "encoder_count": ("encoders", "encoders"),
    "jpeg_count": ("jpeg-engines", "jpegEngines"),
    "ofa_count": ("ofa-engines", "ofaEngines"),
}
GPU_FIELDS = ("product_name", "total_memory_mib", "sm_count", "max_memory_slices", "max_compute_slices")
FIELDS = ("name", "slice_count", "instance_count", "multiprocessor_count", "memory_size_mib", "placements", *ENGINES)
MIG_MACHINES = sorted(n for n, p in MACHINE_PROFILES.items() if any(gpu_models()[s.model].mig_capable for s in p.gpus))


VENDORED = Path(__file__).resolve().parent.parent / "data" / "mig-profiles.json"
"""A copy of the hardware reference (facts: what real GPUs report), so the check runs in a clean clone too."""


def test_the_vendored_reference_is_the_shared_one() -> None:
    if not DEFAULT_SOURCE.exists():
        pytest.skip(f"the shared hardware reference {DEFAULT_SOURCE} is not beside this checkout")
    assert json.loads(VENDORED.read_text()) == json.loads(DEFAULT_SOURCE.read_text()), "copy it again to tests/data"


@cache
def _reference() -> dict[str, dict[str, Any]]:
    """Reference models by product name: those with every GPU fact and every GPU-instance profile field we check,
    and a full-size profile (the partial entries of the file lack some)."""
    models = json.loads(VENDORED.read_text())["models"]
    return {
        m["gpu"]["product_name"]: m
        for m in models
        if all(m["gpu"].get(f) is not None for f in GPU_FIELDS)
        and m.get("gpu_instance_profiles")
        and all(all(f in p for f in FIELDS) for p in m["gpu_instance_profiles"])
        and any(p["placements"][0]["size"] == m["gpu"]["max_memory_slices"] for p in m["gpu_instance_profiles"])
    }


def _full(model: dict[str, Any]) -> dict[str, Any]:
    slices = model["gpu"]["max_memory_slices"]
    (full,) = [p for p in model["gpu_instance_profiles"] if p["placements"][0]["size"] == slices]
    return full


def _values(d: Device) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, counters consumed) of a device."""
    consumed = {k: v for c in d.consumes for k, v in c.counters}
    return {k: c.value for k, c in d.capacity}, consumed


def _check_gpu(gpu: Gpu, devices: dict[str, Device], counters: dict[str, str], model: dict[str, Any]) -> int:
    """Check one MIG-mode GPU's counters and devices against its reference model; returns the devices checked."""
    full, g = _full(model), model["gpu"]
    slices = [f"memory-slice-{i}" for i in range(g["max_memory_slices"])]
    assert {k: v for k, v in counters.items() if k.startswith("memory-slice")} == dict.fromkeys(slices, "1")
    assert counters["multiprocessors"] == str(full["multiprocessor_count"])
    assert counters["memory"] == quantity.binary(full["memory_size_mib"] * MIB)
    assert counters["compute-slices"] == str(g["max_compute_slices"]) == str(full["slice_count"])
    for field, (counter, _) in ENGINES.items():
        assert counters.get(counter, "0") == str(full[field]), (gpu.product_name, counter)
    checked = 0
    for profile in model["gpu_instance_profiles"]:
        for placement in profile["placements"]:
            capacity, used = _values(devices[dev.mig_name(gpu, profile["name"], placement["start"])])
            start, size = placement["start"], placement["size"]
            assert {k for k in used if k.startswith("memory-slice")} == {
                f"memory-slice-{i}" for i in range(start, start + size)
            }
            assert used["multiprocessors"] == capacity["multiprocessors"] == str(profile["multiprocessor_count"])
            assert used["memory"] == capacity["memory"] == quantity.binary(profile["memory_size_mib"] * MIB)
            assert used["compute-slices"] == str(profile["slice_count"])
            for field, (counter, cap) in ENGINES.items():
                assert used.get(counter, "0") == capacity[cap] == str(profile[field]), (profile["name"], counter)
            checked += 1
    whole_capacity, whole_used = _values(devices[dev.whole_name(gpu)])
    assert whole_used == counters  # the whole GPU excludes every MIG device
    assert whole_capacity == {"memory": counters["memory"], "multiprocessors": counters["multiprocessors"]}
    mig_devices = [n for n in devices if n.startswith(f"{dev.whole_name(gpu)}-mig-")]
    assert len(mig_devices) == checked  # no device the table does not have
    return checked + 1


@pytest.mark.parametrize("machine_profile", MIG_MACHINES)
def test_mig_counters_and_devices_of_every_simulated_machine_equal_the_reference_profile_table(
    inventory: Inv, machine_profile: str
) -> None:
    inv = inventory(machine_profile)
    pool = build_pool(inv, {g.index: Mig() for g in inv.gpus}, Capabilities(), DRIVER, "n")
    devices = {d.name: d for d in pool.devices()}
    sets = {cs.name: dict(cs.counters) for s in pool.slices for cs in s.counter_sets}
    checked = 0
    for gpu in inv.gpus:
        if not gpu.mig_capable:
            continue
        model = _reference()[gpu.product_name]
        checked += _check_gpu(gpu, devices, sets[dev.counter_set_name(gpu)], model)
    assert checked == len(devices)


def _gpu_from_reference(model: dict[str, Any]) -> Gpu:
    """A MIG-enabled GPU as discovery would see it, straight from a reference model (also models not simulated)."""
    g = model["gpu"]
    profiles = tuple(
        MigProfile(
            p["name"],
            int(p.get("profile_id", 0)),
            p["slice_count"],
            p["placements"][0]["size"],
            p["memory_size_mib"] * MIB,
            p["multiprocessor_count"],
            p["copy_engine_count"],
            p["decoder_count"],
            p["encoder_count"],
            p["jpeg_count"],
            p["ofa_count"],
            p["instance_count"],
            tuple(Placement(x["start"], x["size"]) for x in p["placements"]),
        )
        for p in model["gpu_instance_profiles"]
    )
    return Gpu(
        0, 0, "GPU-ref", None, g["product_name"], 14, g["architecture"], g["cuda_compute_capability"],
        g["total_memory_mib"] * MIB, g["sm_count"], "0000:07:00.0", 0, None, None, 0, True, True, False, profiles, (), (),
    )  # fmt: skip


def test_every_complete_reference_model_gets_the_counters_of_its_table() -> None:
    """Including models the simulator does not have (H200): counters are the full-size instance's, which no
    combination of one profile's instances exceeds, and the whole GPU advertises that instance."""
    inv = Inventory("580.95.05", "13.0", "13.580.95.05", ())
    assert len(_reference()) >= 4
    for model in _reference().values():
        gpu = _gpu_from_reference(model)
        devices, counter_set = dev.partitionable_mig(inv, gpu)
        _check_gpu(gpu, {d.name: d for d in devices}, dict(counter_set.counters), model)
        for p in model["gpu_instance_profiles"]:
            assert p["multiprocessor_count"] * p["instance_count"] <= _full(model)["multiprocessor_count"]
            assert p["memory_size_mib"] * p["instance_count"] <= _full(model)["memory_size_mib"]


def _claim(device: str) -> dict[str, Any]:
    results = [{"request": "gpu", "driver": DRIVER, "pool": "n", "device": device}]
    return {"metadata": {"uid": "u1"}, "status": {"allocation": {"devices": {"results": results}}}}


@pytest.mark.parametrize("mig_enabled", [True, False])
@pytest.mark.parametrize("machine_profile", ["single-a100", "a100-80gb-a30", "dgx-h100", "l4"])
def test_a_whole_gpu_claim_gets_exactly_what_the_whole_gpu_device_advertises(
    inventory: Inv, machine_profile: str, mig_enabled: bool
) -> None:
    inv = inventory(machine_profile, mig_enabled=mig_enabled)
    ctx = Context(DRIVER, "n", inv, "/mps")
    for gpu in inv.gpus:
        capacity, _ = _values(dev.whole_gpu(inv, gpu))
        (planned,) = plan_claim(ctx, ClaimRef("ns", "u1", "c"), _claim(dev.whole_name(gpu)), [])
        match planned.hardware:
            case MigPartition(profile=name):  # the full-size MIG instance
                profile = gpu.mig_profile(name)
                assert profile is not None and profile == full_size_profile(gpu) and gpu.mig_enabled
                delivered = (profile.memory_bytes, profile.multiprocessors)
            case WholeGpu():
                assert not gpu.mig_enabled or full_size_profile(gpu) is None
                delivered = (gpu.memory_bytes, gpu.multiprocessors)
            case other:
                raise AssertionError(f"a whole-GPU claim planned as {other}")
        assert capacity == {"memory": quantity.binary(delivered[0]), "multiprocessors": quantity.decimal(delivered[1])}


def test_a_mig_enabled_a100_40gb_whole_gpu_advertises_its_7g_instance_not_the_mig_off_totals(inventory: Inv) -> None:
    inv = inventory("single-a100")
    capacity, _ = _values(dev.whole_gpu(inv, inv.gpus[0]))
    assert capacity == {"memory": "40192Mi", "multiprocessors": "98"}  # MIG off: 40Gi and 108
    off = inventory("single-a100", mig_enabled=False)
    assert _values(dev.whole_gpu(off, off.gpus[0]))[0] == {"memory": "40Gi", "multiprocessors": "108"}
