"""GPU settings the plugin changes through NVML: compute mode (for MPS sharing)."""

from __future__ import annotations

import pynvml

from dra_driver.nvml.session import Nvml

DEFAULT = pynvml.NVML_COMPUTEMODE_DEFAULT
EXCLUSIVE_PROCESS = pynvml.NVML_COMPUTEMODE_EXCLUSIVE_PROCESS


def compute_mode(nvml: Nvml, gpu_index: int) -> int:
    return int(nvml.call("nvmlDeviceGetComputeMode", nvml.device(gpu_index)))


def set_compute_mode(nvml: Nvml, gpu_index: int, mode: int) -> None:
    nvml.call("nvmlDeviceSetComputeMode", nvml.device(gpu_index), mode)
