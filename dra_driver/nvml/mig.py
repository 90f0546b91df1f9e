"""Create and destroy MIG partitions (GPU instance + full compute instance) through NVML.

A partition is named by (GPU index, GPU-instance profile name, placement start). Creation is
all-or-nothing: if the compute instance or the MIG device cannot be made, the GPU instance is
destroyed again before the error propagates. Destruction is idempotent.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import pynvml

from dra_driver import errors
from dra_driver.inventory import MigProfile
from dra_driver.nvml.discovery import gpu_instances as discovered_instances
from dra_driver.nvml.discovery import mig_device_handles, mig_profiles
from dra_driver.nvml.session import Nvml


@dataclass(frozen=True)
class MigPartition:
    gpu_index: int
    gpu_instance_id: int
    compute_instance_id: int
    profile: str
    start: int
    size: int
    uuid: str  # the MIG device's UUID ("MIG-...")


def _profile(nvml: Nvml, h: Any, name: str) -> MigProfile:
    profiles = mig_profiles(nvml, h)
    for p in profiles:
        if p.name == name:
            return p
    raise errors.ConfigError("profile", f"this GPU has no MIG profile {name!r}; it has {[p.name for p in profiles]}")


def _ci_profiles(nvml: Nvml, gi: Any) -> list[Any]:
    """The compute-instance profile infos a GPU instance offers (shared engines)."""
    infos = []
    for enum in range(pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
        try:
            infos.append(
                nvml.call(
                    "nvmlGpuInstanceGetComputeInstanceProfileInfo",
                    gi,
                    enum,
                    pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED,
                )
            )
        except errors.NvmlError:
            continue
    return infos


def _full_ci_profile_id(nvml: Nvml, gi: Any) -> int:
    infos = _ci_profiles(nvml, gi)
    if not infos:
        raise errors.NotSupported("nvmlGpuInstanceGetComputeInstanceProfileInfo", 3, "no compute-instance profile")
    return int(max(infos, key=lambda i: int(i.sliceCount)).id)


def _mig_uuid(nvml: Nvml, h: Any, gi_id: int, ci_id: int) -> str:
    for mig in mig_device_handles(nvml, h):
        ids = (nvml.call("nvmlDeviceGetGpuInstanceId", mig), nvml.call("nvmlDeviceGetComputeInstanceId", mig))
        if ids == (gi_id, ci_id):
            return str(nvml.call("nvmlDeviceGetUUID", mig))
    raise errors.NvmlError(
        "nvmlDeviceGetMigDeviceHandleByIndex",
        pynvml.NVML_ERROR_NOT_FOUND,
        f"no MIG device for GPU instance {gi_id} / compute instance {ci_id}",
    )


def create_partition(nvml: Nvml, gpu_index: int, profile: str, start: int) -> MigPartition:
    """Create a GPU instance of ``profile`` at ``start`` and its full compute instance; roll back on failure."""
    h = nvml.device(gpu_index)
    p = _profile(nvml, h, profile)
    placement = pynvml.c_nvmlGpuInstancePlacement_t()
    placement.start, placement.size = start, p.memory_slices
    gi = nvml.call("nvmlDeviceCreateGpuInstanceWithPlacement", h, p.profile_id, ctypes.byref(placement))
    try:
        gi_id = int(nvml.call("nvmlGpuInstanceGetInfo", gi).id)
        ci = nvml.call("nvmlGpuInstanceCreateComputeInstance", gi, _full_ci_profile_id(nvml, gi))
        try:
            ci_id = int(nvml.call("nvmlComputeInstanceGetInfo", ci).id)
            uuid = _mig_uuid(nvml, h, gi_id, ci_id)
        except errors.DriverError:
            nvml.call("nvmlComputeInstanceDestroy", ci)
            raise
    except errors.DriverError:
        nvml.call("nvmlGpuInstanceDestroy", gi)
        raise
    return MigPartition(gpu_index, gi_id, ci_id, profile, start, p.memory_slices, uuid)


def destroy_partition(nvml: Nvml, gpu_index: int, gpu_instance_id: int) -> bool:
    """Destroy a GPU instance and all its compute instances. False if it did not exist."""
    h = nvml.device(gpu_index)
    try:
        gi = nvml.call("nvmlDeviceGetGpuInstanceById", h, gpu_instance_id)
    except errors.NvmlError as exc:
        if exc.code in (pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_ERROR_INVALID_ARGUMENT):
            return False
        raise
    for info in _ci_profiles(nvml, gi):
        count = ctypes.c_uint(info.instanceCount)
        buf = (pynvml.c_nvmlComputeInstance_t * max(info.instanceCount, 1))()
        nvml.call("nvmlGpuInstanceGetComputeInstances", gi, info.id, buf, ctypes.byref(count))
        for ci in buf[: count.value]:
            nvml.call("nvmlComputeInstanceDestroy", ci)
    nvml.call("nvmlGpuInstanceDestroy", gi)
    return True


def gpu_instances(nvml: Nvml, gpu_index: int) -> list[tuple[int, str, int]]:
    """(GPU instance id, profile name, placement start) of every GPU instance on the GPU."""
    h = nvml.device(gpu_index)
    profiles = mig_profiles(nvml, h)
    names = {p.profile_id: p.name for p in profiles}
    return [(gi.id, names[gi.profile_id], gi.placement.start) for gi in discovered_instances(nvml, h, profiles)]
