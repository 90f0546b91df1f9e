"""The MIG lifecycle through the unchanged pynvml: mode, profiles, GPU/compute instances, MIG devices."""

from __future__ import annotations

import ctypes

import pynvml
import pytest

from nvml_sim.hardware import MACHINE_PROFILES, gpu_models
from tests.conftest import MachineFactory
from tests.nvml_sim.helpers import create_full_ci, create_gi, placements

A100_40GB = {  # name: (profile id, placements) as `nvidia-smi mig -lgip/-lgipp` prints them
    "1g.5gb": (19, [(s, 1) for s in range(7)]),
    "1g.5gb+me": (20, [(s, 1) for s in range(7)]),
    "1g.10gb": (15, [(0, 2), (2, 2), (4, 2), (6, 2)]),
    "2g.10gb": (14, [(0, 2), (2, 2), (4, 2)]),
    "3g.20gb": (9, [(0, 4), (4, 4)]),
    "4g.20gb": (5, [(0, 4)]),
    "7g.40gb": (0, [(0, 8)]),
}


def _profiles(h: object) -> dict[str, tuple[int, list[tuple[int, int]]]]:
    out = {}
    for enum in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
        try:
            info = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(h, enum)
        except pynvml.NVMLError_NotSupported:
            continue
        out[info.name.removeprefix("MIG ")] = (info.id, placements(h, info.id))
    return out


def test_a100_40gb_profiles_and_placements_match_nvidia_smi(machine: MachineFactory) -> None:
    machine("single-a100")
    assert _profiles(pynvml.nvmlDeviceGetHandleByIndex(0)) == A100_40GB


@pytest.mark.parametrize("profile", ["dgx-h100", "a100-80gb-a30"])
def test_every_model_reports_the_profiles_of_its_hardware_table(machine: MachineFactory, profile: str) -> None:
    machine(profile)
    for i, slot in enumerate(MACHINE_PROFILES[profile].gpus):
        expected = {
            p.name: (p.profile_id, [(x.start, x.size) for x in p.placements])
            for p in gpu_models()[slot.model].gi_profiles
        }
        assert _profiles(pynvml.nvmlDeviceGetHandleByIndex(i)) == expected


def test_profile_enumeration_ends_with_invalid_argument(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetGpuInstanceProfileInfo(h, pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetGpuInstanceProfileInfo(h, pynvml.NVML_GPU_INSTANCE_PROFILE_8_SLICE)


def test_profile_info_v1_and_by_id_agree_with_v2(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    v1 = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(h, pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE, version=1)
    v2 = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(h, pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE)
    by_id = pynvml.nvmlDeviceGetGpuInstanceProfileInfoById(h, 9)
    assert (v1.id, v1.memorySizeMB, v1.multiprocessorCount) == (9, 19968, 42)
    assert (v2.id, v2.memorySizeMB, v2.name) == (9, 19968, "MIG 3g.20gb")
    assert (by_id.id, by_id.sliceCount, by_id.instanceCount) == (9, 3, 2)


def test_full_lifecycle_creates_a_mig_device_and_tears_it_down(machine: MachineFactory) -> None:
    sim = machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    gi = create_gi(h, 9, 4, 4)
    info = pynvml.nvmlGpuInstanceGetInfo(gi)
    assert (info.id, info.profileId, info.placement.start, info.placement.size) == (1, 9, 4, 4)
    assert pynvml.nvmlDeviceGetGpuInstanceRemainingCapacity(h, 9) == 1
    ci = create_full_ci(gi)
    ci_info = pynvml.nvmlComputeInstanceGetInfo(ci)
    assert (ci_info.id, ci_info.profileId) == (0, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE)
    assert pynvml.nvmlGpuInstanceGetInfo(ci_info.gpuInstance).id == info.id
    mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(h, 0)
    assert pynvml.nvmlDeviceIsMigDeviceHandle(mig).value == 1
    assert pynvml.nvmlDeviceGetName(mig) == "NVIDIA A100-SXM4-40GB MIG 3g.20gb"
    assert pynvml.nvmlDeviceGetUUID(mig).startswith("MIG-")
    assert pynvml.nvmlDeviceGetGpuInstanceId(mig) == 1
    assert pynvml.nvmlDeviceGetComputeInstanceId(mig) == 0
    assert pynvml.nvmlDeviceGetMemoryInfo(mig).total == 19968 * 1024 * 1024
    attrs = pynvml.nvmlDeviceGetAttributes(mig)
    assert (attrs.multiprocessorCount, attrs.gpuInstanceSliceCount, attrs.memorySizeMB) == (42, 3, 19968)
    parent = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
    assert pynvml.nvmlDeviceGetIndex(parent) == 0
    by_uuid = pynvml.nvmlDeviceGetHandleByUUID(pynvml.nvmlDeviceGetUUID(mig))
    assert ctypes.cast(by_uuid, ctypes.c_void_p).value == ctypes.cast(mig, ctypes.c_void_p).value
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlDeviceGetMigDeviceHandleByIndex(h, 1)
    pynvml.nvmlComputeInstanceDestroy(ci)
    pynvml.nvmlGpuInstanceDestroy(gi)
    assert sim.mig_partitions() == []


def test_gpu_instance_ids_follow_the_placement_slot(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    ids = [pynvml.nvmlGpuInstanceGetInfo(create_gi(h, 19, s, 1)).id for s in (0, 3, 6)]
    assert ids == [7, 10, 13]
    assert pynvml.nvmlGpuInstanceGetInfo(create_gi(h, 14, 4, 2)).id == 5


def test_instances_are_listed_and_found_by_id(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    for start in (0, 1, 2):
        create_gi(h, 19, start, 1)
    count = ctypes.c_uint(7)
    buf = (pynvml.c_nvmlGpuInstance_t * 7)()
    pynvml.nvmlDeviceGetGpuInstances(h, 19, buf, ctypes.byref(count))
    assert sorted(pynvml.nvmlGpuInstanceGetInfo(g).id for g in buf[: count.value]) == [7, 8, 9]
    gi = pynvml.nvmlDeviceGetGpuInstanceById(h, 8)
    ci = create_full_ci(gi)
    ci_count = ctypes.c_uint(1)
    ci_buf = (pynvml.c_nvmlComputeInstance_t * 1)()
    pynvml.nvmlGpuInstanceGetComputeInstances(gi, 0, ci_buf, ctypes.byref(ci_count))
    assert ci_count.value == 1
    assert pynvml.nvmlComputeInstanceGetInfo(pynvml.nvmlGpuInstanceGetComputeInstanceById(gi, 0)).id == 0
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlGpuInstanceGetComputeInstanceById(gi, 3)
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlDeviceGetGpuInstanceById(h, 12)
    pynvml.nvmlComputeInstanceDestroy(ci)


def test_compute_instances_split_a_gpu_instance(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    gi = create_gi(h, 0, 0, 8)  # 7g.40gb
    one_slice = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, 0, 0)
    assert (one_slice.instanceCount, one_slice.multiprocessorCount) == (7, 14)
    assert pynvml.nvmlGpuInstanceGetComputeInstanceRemainingCapacity(gi, 0) == 7
    count = ctypes.c_uint(0)
    pynvml.nvmlGpuInstanceGetComputeInstancePossiblePlacements(gi, 1, None, ctypes.byref(count))
    assert count.value == 3
    p = pynvml.c_nvmlComputeInstancePlacement_t()
    p.start, p.size = 2, 2
    ci = pynvml.nvmlGpuInstanceCreateComputeInstanceWithPlacement(gi, 1, ctypes.byref(p))
    assert pynvml.nvmlComputeInstanceGetInfo(ci).placement.start == 2
    assert pynvml.nvmlGpuInstanceGetComputeInstanceRemainingCapacity(gi, 0) == 5
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        pynvml.nvmlGpuInstanceCreateComputeInstanceWithPlacement(gi, 1, ctypes.byref(p))
    mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(h, 0)
    assert pynvml.nvmlDeviceGetName(mig) == "NVIDIA A100-SXM4-40GB MIG 2c.7g.40gb"
    assert pynvml.nvmlDeviceGetAttributes(mig).multiprocessorCount == 28
    pynvml.nvmlComputeInstanceDestroy(ci)
    pynvml.nvmlGpuInstanceDestroy(gi)


def test_create_without_placement_takes_the_first_free_one(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    create_gi(h, 9, 0, 4)
    gi = pynvml.nvmlDeviceCreateGpuInstance(h, 9)
    assert pynvml.nvmlGpuInstanceGetInfo(gi).placement.start == 4
    assert pynvml.nvmlDeviceGetGpuInstanceRemainingCapacity(h, 19) == 0


def test_ampere_mig_mode_change_is_pending_until_reset(machine: MachineFactory) -> None:
    sim = machine("single-a100", mig_enabled=False)
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlDeviceGetMigMode(h) == [0, 0]
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceCreateGpuInstance(h, 19)
    assert pynvml.nvmlDeviceSetMigMode(h, pynvml.NVML_DEVICE_MIG_ENABLE) == pynvml.NVML_ERROR_RESET_REQUIRED
    assert pynvml.nvmlDeviceGetMigMode(h) == [0, 1]
    assert pynvml.nvmlDeviceGetMaxMigDeviceCount(h) == 0
    sim.reset_gpu(0)
    assert pynvml.nvmlDeviceGetMigMode(h) == [1, 1]
    assert pynvml.nvmlDeviceGetMaxMigDeviceCount(h) == 7


def test_hopper_mig_mode_change_applies_at_once(machine: MachineFactory) -> None:
    machine("dgx-h100", mig_enabled=False)
    h = pynvml.nvmlDeviceGetHandleByIndex(2)
    assert pynvml.nvmlDeviceSetMigMode(h, pynvml.NVML_DEVICE_MIG_ENABLE) == pynvml.NVML_SUCCESS
    assert pynvml.nvmlDeviceGetMigMode(h) == [1, 1]


def test_mig_mode_cannot_be_disabled_while_instances_exist(machine: MachineFactory) -> None:
    machine("dgx-h100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    gi = create_gi(h, 19, 0, 1)
    with pytest.raises(pynvml.NVMLError_InUse):
        pynvml.nvmlDeviceSetMigMode(h, pynvml.NVML_DEVICE_MIG_DISABLE)
    pynvml.nvmlGpuInstanceDestroy(gi)
    pynvml.nvmlDeviceSetMigMode(h, pynvml.NVML_DEVICE_MIG_DISABLE)
    assert pynvml.nvmlDeviceGetMigMode(h) == [0, 0]
