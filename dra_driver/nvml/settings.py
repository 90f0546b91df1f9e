"""GPU settings the plugin changes through NVML: compute mode (for MPS sharing) and MIG mode (NodeGpuModes)."""

from __future__ import annotations

import pynvml

from dra_driver.nvml.session import Nvml

DEFAULT = pynvml.NVML_COMPUTEMODE_DEFAULT
EXCLUSIVE_PROCESS = pynvml.NVML_COMPUTEMODE_EXCLUSIVE_PROCESS


def compute_mode(nvml: Nvml, gpu_index: int) -> int:
    return int(nvml.call("nvmlDeviceGetComputeMode", nvml.device(gpu_index)))


def set_compute_mode(nvml: Nvml, gpu_index: int, mode: int) -> None:
    nvml.call("nvmlDeviceSetComputeMode", nvml.device(gpu_index), mode)


def mig_mode(nvml: Nvml, gpu_index: int) -> tuple[bool, bool]:
    """(current, pending) MIG mode; they differ while a change waits for a GPU reset."""
    current, pending = nvml.call("nvmlDeviceGetMigMode", nvml.device(gpu_index))
    return bool(current), bool(pending)


def set_mig_mode(nvml: Nvml, gpu_index: int, enabled: bool) -> int:
    """Set the MIG mode; returns NVML's activation status (``NVML_ERROR_RESET_REQUIRED`` where it waits for a reset,
    as on Ampere; the pending mode from ``mig_mode`` says the same)."""
    return int(nvml.call("nvmlDeviceSetMigMode", nvml.device(gpu_index), 1 if enabled else 0))
