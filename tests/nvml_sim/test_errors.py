"""NVML's return codes where NVML gives them: busy placements, in-use objects, bad handles, faults."""

from __future__ import annotations

import ctypes

import pynvml
import pytest

from tests.conftest import MachineFactory
from tests.nvml_sim.helpers import create_full_ci, create_gi


def test_busy_placement_is_insufficient_resources(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    create_gi(h, 9, 0, 4)  # 3g.20gb on slices 0-3
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        create_gi(h, 19, 2, 1)  # 1g.5gb on slice 2
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        create_gi(h, 5, 0, 4)  # 4g.20gb overlaps
    create_gi(h, 19, 4, 1)  # slice 4 is free


def test_profile_instance_limit_is_insufficient_resources(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    create_gi(h, 20, 0, 1)  # 1g.5gb+me: one instance per GPU
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        create_gi(h, 20, 1, 1)


def test_three_and_four_slice_instances_fit_together_but_not_two_fours(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    create_gi(h, 5, 0, 4)  # 4g.20gb
    create_gi(h, 9, 4, 4)  # 3g.20gb
    assert pynvml.nvmlDeviceGetGpuInstanceRemainingCapacity(h, 19) == 0
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        pynvml.nvmlDeviceCreateGpuInstance(h, 5)


def test_destroying_a_gpu_instance_with_compute_instances_is_in_use(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    gi = create_gi(h, 19, 0, 1)
    ci = create_full_ci(gi)
    with pytest.raises(pynvml.NVMLError_InUse):
        pynvml.nvmlGpuInstanceDestroy(gi)
    pynvml.nvmlComputeInstanceDestroy(ci)
    pynvml.nvmlGpuInstanceDestroy(gi)


def test_mig_calls_on_a_non_mig_gpu_are_not_supported(machine: MachineFactory) -> None:
    machine("l4")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    for call, args in [
        (pynvml.nvmlDeviceGetMigMode, ()),
        (pynvml.nvmlDeviceSetMigMode, (1,)),
        (pynvml.nvmlDeviceGetGpuInstanceProfileInfo, (0,)),
        (pynvml.nvmlDeviceGetGpuInstanceRemainingCapacity, (19,)),
        (pynvml.nvmlDeviceCreateGpuInstance, (19,)),
        (pynvml.nvmlDeviceGetMigDeviceHandleByIndex, (0,)),
    ]:
        with pytest.raises(pynvml.NVMLError_NotSupported):
            call(h, *args)
    assert pynvml.nvmlDeviceGetMaxMigDeviceCount(h) == 0
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetGpuInstanceId(h)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetAttributes(h)


def test_bad_handles_and_arguments_are_invalid_argument(machine: MachineFactory) -> None:
    machine("single-a100")
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetHandleByIndex(1)
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        create_gi(h, 9, 2, 4)  # not a placement of 3g.20gb
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceCreateGpuInstance(h, 42)  # no such profile id
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetMigDeviceHandleByIndex(h, 7)  # past the maximum
    gi = create_gi(h, 19, 0, 1)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, 0, 1)  # unknown engine profile
    pynvml.nvmlGpuInstanceDestroy(gi)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlGpuInstanceGetInfo(gi)  # destroyed: the handle is invalid
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlGpuInstanceDestroy(gi)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetName(gi)  # a GPU-instance handle is not a device handle
    assert pynvml.nvmlLib.nvmlDeviceGetCount_v2(None) == pynvml.NVML_ERROR_INVALID_ARGUMENT


def test_short_instance_buffer_is_insufficient_size(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    for start in (0, 1):
        create_gi(h, 19, start, 1)
    count = ctypes.c_uint(1)
    buf = (pynvml.c_nvmlGpuInstance_t * 1)()
    with pytest.raises(pynvml.NVMLError_InsufficientSize):
        pynvml.nvmlDeviceGetGpuInstances(h, 19, buf, ctypes.byref(count))
    assert count.value == 2


def test_calls_before_init_or_after_shutdown_are_uninitialized(machine: MachineFactory) -> None:
    machine("single-a100", init=False)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        pynvml.nvmlDeviceGetCount()
    pynvml.nvmlInit()
    pynvml.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlLib.nvmlShutdown() == pynvml.NVML_ERROR_UNINITIALIZED


def test_init_without_a_machine_is_driver_not_loaded(machine: MachineFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    machine("single-a100", init=False)
    monkeypatch.setenv("DRA_SIM_NVML_STATE", "/nonexistent/machine.json")
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        pynvml.nvmlInit()


def test_lost_gpu_answers_gpu_is_lost_and_others_keep_working(machine: MachineFactory) -> None:
    sim = machine("dgx-a100")
    sim.set_fault(2, "lost")
    lost = pynvml.nvmlDeviceGetHandleByIndex(2)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetUUID(lost)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        create_gi(lost, 19, 0, 1)
    assert pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(3)) == "NVIDIA A100-SXM4-40GB"
    sim.reset_gpu(2)
    assert pynvml.nvmlDeviceGetUUID(lost).startswith("GPU-")


def test_failing_gpu_refuses_to_create_instances(machine: MachineFactory) -> None:
    sim = machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    gi = create_gi(h, 9, 0, 4)
    sim.set_fault(0, "failing")
    with pytest.raises(pynvml.NVMLError_Unknown):
        create_gi(h, 9, 4, 4)
    with pytest.raises(pynvml.NVMLError_Unknown):
        create_full_ci(gi)
    pynvml.nvmlGpuInstanceDestroy(gi)  # teardown still works


def test_null_placement_pointer_is_invalid_argument(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    out = pynvml.c_nvmlGpuInstance_t()
    rc = pynvml.nvmlLib.nvmlDeviceCreateGpuInstanceWithPlacement(h, 19, None, ctypes.byref(out))
    assert rc == pynvml.NVML_ERROR_INVALID_ARGUMENT
