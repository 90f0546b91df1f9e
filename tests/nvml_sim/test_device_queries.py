"""Device and system queries through the unchanged pynvml, for every simulated profile."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pynvml
import pytest

from nvml_sim.hardware import MACHINE_PROFILES, gpu_models
from tests.conftest import MachineFactory

EXPECTED = {
    "dgx-a100": ["NVIDIA A100-SXM4-40GB"] * 8,
    "dgx-h100": ["NVIDIA H100 80GB HBM3"] * 8,
    "a100-80gb-a30": ["NVIDIA A100-SXM4-80GB"] * 2 + ["NVIDIA A30"] * 2,
    "l4": ["NVIDIA L4"] * 4,
    "single-a100": ["NVIDIA A100-SXM4-40GB"],
}


@pytest.mark.parametrize("profile", sorted(MACHINE_PROFILES))
def test_each_profile_reports_its_gpus_with_real_identity(machine: MachineFactory, profile: str) -> None:
    machine(profile)
    assert pynvml.nvmlDeviceGetCount() == len(EXPECTED[profile])
    uuids = set()
    for i, name in enumerate(EXPECTED[profile]):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        slot = MACHINE_PROFILES[profile].gpus[i]
        model = gpu_models()[slot.model]
        assert pynvml.nvmlDeviceGetName(h) == name
        assert pynvml.nvmlDeviceGetIndex(h) == i
        assert pynvml.nvmlDeviceGetMinorNumber(h) == i
        assert pynvml.nvmlDeviceGetMemoryInfo(h).total == model.memory_mib * 1024 * 1024
        assert pynvml.nvmlDeviceGetCudaComputeCapability(h) == model.compute_capability
        assert pynvml.nvmlDeviceGetArchitecture(h) == model.architecture
        pci = pynvml.nvmlDeviceGetPciInfo(h)
        assert pci.pciDeviceId == model.pci_device_id
        assert pci.busId == f"00000000:{slot.pci_bus:02X}:00.0"
        with pytest.raises(pynvml.NVMLError_NotSupported):  # as on a real x86 host: NUMA is in sysfs
            pynvml.nvmlDeviceGetNumaNodeId(h)
        assert pynvml.nvmlDeviceGetBrand(h) == pynvml.NVML_BRAND_NVIDIA
        assert pynvml.nvmlDeviceGetSerial(h).isdigit()
        uuid = pynvml.nvmlDeviceGetUUID(h)
        assert uuid.startswith("GPU-")
        uuids.add(uuid)
        assert pynvml.nvmlDeviceGetMaxMigDeviceCount(h) == (model.compute_slices if model.mig_capable else 0)
    assert len(uuids) == len(EXPECTED[profile])


def test_system_versions_are_reported(machine: MachineFactory) -> None:
    machine("single-a100")
    assert pynvml.nvmlSystemGetDriverVersion() == "580.95.05"
    assert pynvml.nvmlSystemGetNVMLVersion() == "13.580.95.05"
    assert pynvml.nvmlSystemGetCudaDriverVersion() == 13000
    assert pynvml.nvmlSystemGetCudaDriverVersion_v2() == 13000


def test_handles_are_found_by_uuid_and_pci_bus_id(machine: MachineFactory) -> None:
    machine("dgx-a100")
    h3 = pynvml.nvmlDeviceGetHandleByIndex(3)
    uuid = pynvml.nvmlDeviceGetUUID(h3)
    assert pynvml.nvmlDeviceGetIndex(pynvml.nvmlDeviceGetHandleByUUID(uuid)) == 3
    assert pynvml.nvmlDeviceGetIndex(pynvml.nvmlDeviceGetHandleByPciBusId(b"00000000:4E:00.0")) == 3
    assert pynvml.nvmlDeviceGetIndex(pynvml.nvmlDeviceGetHandleByPciBusId(b"0000:4e:00.0")) == 3
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlDeviceGetHandleByUUID("GPU-00000000-0000-0000-0000-000000000000")


def test_memory_info_v2_checks_the_struct_version(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2).total == 40960 * 1024 * 1024
    with pytest.raises(pynvml.NVMLError_ArgumentVersionMismatch):
        pynvml.nvmlDeviceGetMemoryInfo(h, version=0x01000028)


def test_cuda_core_count_follows_the_architecture(machine: MachineFactory) -> None:
    machine("a100-80gb-a30")
    assert pynvml.nvmlDeviceGetNumGpuCores(pynvml.nvmlDeviceGetHandleByIndex(0)) == 108 * 64
    machine("dgx-h100")
    assert pynvml.nvmlDeviceGetNumGpuCores(pynvml.nvmlDeviceGetHandleByIndex(0)) == 132 * 128


def test_compute_mode_can_be_set_and_rejects_removed_modes(machine: MachineFactory) -> None:
    machine("l4")
    h = pynvml.nvmlDeviceGetHandleByIndex(1)
    assert pynvml.nvmlDeviceGetComputeMode(h) == pynvml.NVML_COMPUTEMODE_DEFAULT
    pynvml.nvmlDeviceSetComputeMode(h, pynvml.NVML_COMPUTEMODE_EXCLUSIVE_PROCESS)
    assert pynvml.nvmlDeviceGetComputeMode(h) == pynvml.NVML_COMPUTEMODE_EXCLUSIVE_PROCESS
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceSetComputeMode(h, pynvml.NVML_COMPUTEMODE_EXCLUSIVE_THREAD)


def test_short_string_buffer_is_insufficient_size(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    buf = ctypes.create_string_buffer(8)
    assert pynvml.nvmlLib.nvmlDeviceGetName(h, buf, ctypes.c_uint(8)) == pynvml.NVML_ERROR_INSUFFICIENT_SIZE


def test_error_strings_match_nvml(machine: MachineFactory) -> None:
    machine("single-a100")
    assert pynvml.nvmlErrorString(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES) == "Insufficient Resources"
    assert pynvml.nvmlErrorString(pynvml.NVML_ERROR_IN_USE) == "In use by another client"


def test_library_is_found_through_ld_library_path_in_a_fresh_process(machine: MachineFactory) -> None:
    sim = machine("dgx-h100", init=False)
    code = (
        "import json, pynvml; pynvml.nvmlInit();"
        "h = pynvml.nvmlDeviceGetHandleByIndex(7);"
        "print(json.dumps([pynvml.nvmlDeviceGetCount(), pynvml.nvmlDeviceGetName(h)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=sim.environ(), capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [8, "NVIDIA H100 80GB HBM3"]


def test_without_the_library_pynvml_reports_library_not_found() -> None:
    code = "import pynvml\ntry:\n pynvml.nvmlInit()\nexcept pynvml.NVMLError as e:\n print(e.value)"
    out = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert out.stdout.strip() == str(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
