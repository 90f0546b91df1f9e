"""Small pynvml call helpers for the simulated-NVML tests."""

from __future__ import annotations

import ctypes
from typing import Any

import pynvml


def placement(start: int, size: int) -> Any:
    p = pynvml.c_nvmlGpuInstancePlacement_t()
    p.start, p.size = start, size
    return ctypes.byref(p)


def create_gi(h: Any, profile_id: int, start: int, size: int) -> Any:
    return pynvml.nvmlDeviceCreateGpuInstanceWithPlacement(h, profile_id, placement(start, size))


def create_full_ci(gi: Any) -> Any:
    """Create the compute instance that spans the whole GPU instance (nvidia-smi's default, marked '*')."""
    info = pynvml.nvmlGpuInstanceGetInfo(gi)
    slices = info.placement.size
    for enum in reversed(range(pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT)):
        try:
            ci_profile = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(
                gi, enum, pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
            )
        except pynvml.NVMLError_NotSupported:
            continue
        if ci_profile.instanceCount == 1 and ci_profile.sliceCount <= slices:
            return pynvml.nvmlGpuInstanceCreateComputeInstance(gi, ci_profile.id)
    raise AssertionError("no full compute-instance profile")


def placements(h: Any, profile_id: int) -> list[tuple[int, int]]:
    count = ctypes.c_uint(0)
    pynvml.nvmlDeviceGetGpuInstancePossiblePlacements(h, profile_id, None, ctypes.byref(count))
    buf = (pynvml.c_nvmlGpuInstancePlacement_t * count.value)()
    pynvml.nvmlDeviceGetGpuInstancePossiblePlacements(h, profile_id, buf, ctypes.byref(count))
    return [(p.start, p.size) for p in buf[: count.value]]
