"""Exported NVML symbols: the MIG lifecycle (mode, GPU instances, compute instances, MIG devices)."""

from __future__ import annotations

from typing import Any

from nvml_sim import abi, codes
from nvml_sim import machine as m
from nvml_sim.abi import COMPUTE_INSTANCE, DEVICE, GPU_INSTANCE, MIG_DEVICE, export, make_handle, need, put
from nvml_sim.hardware import (
    COMPUTE_INSTANCE_PROFILE_COUNT,
    GPU_INSTANCE_PROFILE_COUNT,
    ComputeInstanceProfile,
    GpuInstanceProfile,
    Placement,
)
from nvml_sim.machine import NvmlFault

GI_INFO_V2, GI_INFO_V3 = 0x02000098, 0x03000098
CI_INFO_V2, CI_INFO_V3 = 0x02000088, 0x0300008C
ENGINE_PROFILE_SHARED = 0


@export()
def nvmlDeviceGetMigMode(handle: Any, current: Any, pending: Any) -> None:
    need(current, pending)
    gpu = abi.gpu_device(handle)
    m.require_mig_capable(gpu)
    current[0], pending[0] = gpu["mig"]["current"], gpu["mig"]["pending"]


@export()
def nvmlDeviceSetMigMode(handle: Any, mode: int, activation: Any) -> None:
    need(activation)
    abi.gpu_device(handle)
    with abi.store().mutate() as st:
        activation[0] = m.set_mig_mode(abi.gpu_device(handle, st), mode)


# --- GPU instance profiles ------------------------------------------------------------------


def _gi_profile_for_enum(handle: Any, enum: int) -> GpuInstanceProfile:
    gpu = abi.gpu_device(handle)
    model = m.require_mig_capable(gpu)
    if enum >= GPU_INSTANCE_PROFILE_COUNT:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    profile = model.gi_profile_by_enum(enum)
    if profile is None:
        raise NvmlFault(codes.NOT_SUPPORTED)
    return profile


def _gi_common(p: GpuInstanceProfile) -> dict[str, int]:
    return {
        "id": p.profile_id,
        "sliceCount": p.slice_count,
        "instanceCount": p.instance_count,
        "multiprocessorCount": p.multiprocessors,
        "copyEngineCount": p.copy_engines,
        "decoderCount": p.decoders,
        "encoderCount": p.encoders,
        "jpegCount": p.jpegs,
        "ofaCount": p.ofas,
        "memorySizeMB": p.memory_mib,
    }


def _fill_gi_versioned(out: Any, p: GpuInstanceProfile) -> None:
    need(out)
    name = f"MIG {p.name}".encode()
    if out.version == GI_INFO_V2:
        abi.fill(out, isP2pSupported=p.p2p, **_gi_common(p))
    elif out.version == GI_INFO_V3:
        out = abi.ffi.cast("nvmlGpuInstanceProfileInfo_v3_t *", out)
        abi.fill(out, capabilities=1 if p.p2p else 0, **_gi_common(p))
    else:
        raise NvmlFault(codes.ARGUMENT_VERSION_MISMATCH)
    abi.ffi.memmove(out.name, name + b"\0", len(name) + 1)


@export()
def nvmlDeviceGetGpuInstanceProfileInfo(handle: Any, enum: int, out: Any) -> None:
    need(out)
    gpu = abi.gpu_device(handle)
    profile = _gi_profile_for_enum(handle, enum)
    m.require_mig_enabled(gpu)
    abi.fill(out, isP2pSupported=profile.p2p, **_gi_common(profile))


@export()
def nvmlDeviceGetGpuInstanceProfileInfoV(handle: Any, enum: int, out: Any) -> None:
    profile = _gi_profile_for_enum(handle, enum)
    m.require_mig_enabled(abi.gpu_device(handle))
    _fill_gi_versioned(out, profile)


@export()
def nvmlDeviceGetGpuInstanceProfileInfoByIdV(handle: Any, profile_id: int, out: Any) -> None:
    gpu = abi.gpu_device(handle)
    m.require_mig_enabled(gpu)
    _fill_gi_versioned(out, m.gi_profile_by_id(gpu, profile_id))


def _write_placements(placements: tuple[Placement, ...], out: Any, count: Any) -> None:
    need(count)
    if out == abi.ffi.NULL:
        count[0] = len(placements)
        return
    if count[0] < len(placements):
        count[0] = len(placements)
        raise NvmlFault(codes.INSUFFICIENT_SIZE)
    for i, p in enumerate(placements):
        out[i].start, out[i].size = p.start, p.size
    count[0] = len(placements)


@export(aliases=("nvmlDeviceGetGpuInstancePossiblePlacements_v2",))
def nvmlDeviceGetGpuInstancePossiblePlacements(handle: Any, profile_id: int, out: Any, count: Any) -> None:
    gpu = abi.gpu_device(handle)
    m.require_mig_capable(gpu)
    _write_placements(m.gi_profile_by_id(gpu, profile_id).placements, out, count)


@export()
def nvmlDeviceGetGpuInstanceRemainingCapacity(handle: Any, profile_id: int, count: Any) -> None:
    need(count)
    gpu = abi.gpu_device(handle)
    m.require_mig_enabled(gpu)
    count[0] = m.remaining_capacity(gpu, m.gi_profile_by_id(gpu, profile_id))


# --- GPU instances --------------------------------------------------------------------------


def _gi_handle(gpu: m.Gpu, gi: m.Gi) -> int:
    return make_handle(GPU_INSTANCE, gpu["index"], gi["id"])


def _create_gi(handle: Any, profile_id: int, placement: Placement | None, out: Any) -> None:
    need(out)
    abi.gpu_device(handle)
    with abi.store().mutate() as st:
        gpu = abi.gpu_device(handle, st)
        gi = m.create_gpu_instance(gpu, profile_id, placement)
    abi.write_handle(out, "nvmlGpuInstance_t", _gi_handle(gpu, gi))


@export()
def nvmlDeviceCreateGpuInstance(handle: Any, profile_id: int, out: Any) -> None:
    _create_gi(handle, profile_id, None, out)


@export()
def nvmlDeviceCreateGpuInstanceWithPlacement(handle: Any, profile_id: int, placement: Any, out: Any) -> None:
    need(placement)
    _create_gi(handle, profile_id, Placement(placement.start, placement.size), out)


@export()
def nvmlGpuInstanceDestroy(gi_handle: Any) -> None:
    abi.gpu_instance(gi_handle)
    with abi.store().mutate() as st:
        gpu, gi = abi.gpu_instance(gi_handle, st)
        m.destroy_gpu_instance(gpu, gi["id"])


@export()
def nvmlDeviceGetGpuInstances(handle: Any, profile_id: int, out: Any, count: Any) -> None:
    need(out, count)
    gpu = abi.gpu_device(handle)
    m.require_mig_enabled(gpu)
    profile = m.gi_profile_by_id(gpu, profile_id)
    found = [gi for gi in gpu["gpuInstances"] if gi["profileId"] == profile_id]
    if count[0] < min(len(found), profile.instance_count):
        count[0] = len(found)
        raise NvmlFault(codes.INSUFFICIENT_SIZE)
    for i, gi in enumerate(found):
        out[i] = abi.ffi.cast("nvmlGpuInstance_t", _gi_handle(gpu, gi))
    count[0] = len(found)


@export()
def nvmlDeviceGetGpuInstanceById(handle: Any, gi_id: int, out: Any) -> None:
    gpu = abi.gpu_device(handle)
    m.require_mig_enabled(gpu)
    abi.write_handle(out, "nvmlGpuInstance_t", _gi_handle(gpu, m.gi_by_id(gpu, gi_id)))


@export()
def nvmlGpuInstanceGetInfo(gi_handle: Any, out: Any) -> None:
    need(out)
    gpu, gi = abi.gpu_instance(gi_handle)
    out.device = abi.ffi.cast("nvmlDevice_t", make_handle(DEVICE, gpu["index"]))
    abi.fill(out, id=gi["id"], profileId=gi["profileId"])
    out.placement.start, out.placement.size = gi["start"], gi["size"]


# --- compute instances ----------------------------------------------------------------------


def _ci_profile_for_enum(gpu: m.Gpu, gi: m.Gi, enum: int, eng: int) -> ComputeInstanceProfile:
    if enum >= COMPUTE_INSTANCE_PROFILE_COUNT or eng != ENGINE_PROFILE_SHARED:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    return m.ci_profile_by_id(gpu, gi, enum)


def _ci_common(gpu: m.Gpu, gi: m.Gi, p: ComputeInstanceProfile) -> dict[str, int]:
    gip = m.gi_profile_of(gpu, gi)
    return {
        "id": p.enum,
        "sliceCount": p.slice_count,
        "instanceCount": p.instance_count,
        "multiprocessorCount": p.multiprocessors,
        "sharedCopyEngineCount": gip.copy_engines,
        "sharedDecoderCount": gip.decoders,
        "sharedEncoderCount": gip.encoders,
        "sharedJpegCount": gip.jpegs,
        "sharedOfaCount": gip.ofas,
    }


@export()
def nvmlGpuInstanceGetComputeInstanceProfileInfo(gi_handle: Any, enum: int, eng: int, out: Any) -> None:
    need(out)
    gpu, gi = abi.gpu_instance(gi_handle)
    abi.fill(out, **_ci_common(gpu, gi, _ci_profile_for_enum(gpu, gi, enum, eng)))


@export()
def nvmlGpuInstanceGetComputeInstanceProfileInfoV(gi_handle: Any, enum: int, eng: int, out: Any) -> None:
    need(out)
    gpu, gi = abi.gpu_instance(gi_handle)
    profile = _ci_profile_for_enum(gpu, gi, enum, eng)
    if out.version == CI_INFO_V3:
        out = abi.ffi.cast("nvmlComputeInstanceProfileInfo_v3_t *", out)
        out.capabilities = 0
    elif out.version != CI_INFO_V2:
        raise NvmlFault(codes.ARGUMENT_VERSION_MISMATCH)
    abi.fill(out, **_ci_common(gpu, gi, profile))
    name = f"MIG {profile.name}".encode()
    abi.ffi.memmove(out.name, name + b"\0", len(name) + 1)


@export()
def nvmlGpuInstanceGetComputeInstanceRemainingCapacity(gi_handle: Any, profile_id: int, count: Any) -> None:
    need(count)
    gpu, gi = abi.gpu_instance(gi_handle)
    count[0] = m.ci_remaining_capacity(gpu, gi, m.ci_profile_by_id(gpu, gi, profile_id))


@export()
def nvmlGpuInstanceGetComputeInstancePossiblePlacements(gi_handle: Any, profile_id: int, out: Any, count: Any) -> None:
    gpu, gi = abi.gpu_instance(gi_handle)
    profile = m.ci_profile_by_id(gpu, gi, profile_id)
    _write_placements(profile.placements(m.gi_profile_of(gpu, gi).slice_count), out, count)


def _ci_handle(gpu: m.Gpu, gi: m.Gi, ci: m.Ci) -> int:
    return make_handle(COMPUTE_INSTANCE, gpu["index"], gi["id"], ci["id"])


def _create_ci(gi_handle: Any, profile_id: int, placement: Placement | None, out: Any) -> None:
    need(out)
    abi.gpu_instance(gi_handle)
    with abi.store().mutate() as st:
        gpu, gi = abi.gpu_instance(gi_handle, st)
        ci = m.create_compute_instance(st, gpu, gi, profile_id, placement)
    abi.write_handle(out, "nvmlComputeInstance_t", _ci_handle(gpu, gi, ci))


@export()
def nvmlGpuInstanceCreateComputeInstance(gi_handle: Any, profile_id: int, out: Any) -> None:
    _create_ci(gi_handle, profile_id, None, out)


@export()
def nvmlGpuInstanceCreateComputeInstanceWithPlacement(
    gi_handle: Any, profile_id: int, placement: Any, out: Any
) -> None:
    need(placement)
    _create_ci(gi_handle, profile_id, Placement(placement.start, placement.size), out)


@export()
def nvmlComputeInstanceDestroy(ci_handle: Any) -> None:
    abi.compute_instance(ci_handle)
    with abi.store().mutate() as st:
        _, gi, ci = abi.compute_instance(ci_handle, st)
        m.destroy_compute_instance(gi, ci["id"])


@export()
def nvmlGpuInstanceGetComputeInstances(gi_handle: Any, profile_id: int, out: Any, count: Any) -> None:
    need(out, count)
    gpu, gi = abi.gpu_instance(gi_handle)
    profile = m.ci_profile_by_id(gpu, gi, profile_id)
    found = [ci for ci in gi["computeInstances"] if ci["profileId"] == profile_id]
    if count[0] < min(len(found), profile.instance_count):
        count[0] = len(found)
        raise NvmlFault(codes.INSUFFICIENT_SIZE)
    for i, ci in enumerate(found):
        out[i] = abi.ffi.cast("nvmlComputeInstance_t", _ci_handle(gpu, gi, ci))
    count[0] = len(found)


@export()
def nvmlGpuInstanceGetComputeInstanceById(gi_handle: Any, ci_id: int, out: Any) -> None:
    gpu, gi = abi.gpu_instance(gi_handle)
    abi.write_handle(out, "nvmlComputeInstance_t", _ci_handle(gpu, gi, m.ci_by_id(gi, ci_id)))


@export(aliases=("nvmlComputeInstanceGetInfo_v2",))
def nvmlComputeInstanceGetInfo(ci_handle: Any, out: Any) -> None:
    need(out)
    gpu, gi, ci = abi.compute_instance(ci_handle)
    out.device = abi.ffi.cast("nvmlDevice_t", make_handle(DEVICE, gpu["index"]))
    out.gpuInstance = abi.ffi.cast("nvmlGpuInstance_t", _gi_handle(gpu, gi))
    abi.fill(out, id=ci["id"], profileId=ci["profileId"])
    out.placement.start, out.placement.size = ci["start"], ci["size"]


# --- MIG device handles ---------------------------------------------------------------------


@export()
def nvmlDeviceIsMigDeviceHandle(handle: Any, out: Any) -> None:
    put(out, 1 if abi.device(handle).is_mig else 0)


@export()
def nvmlDeviceGetGpuInstanceId(handle: Any, out: Any) -> None:
    target = abi.device(handle)
    if target.gi is None:
        raise NvmlFault(codes.NOT_SUPPORTED)
    put(out, target.gi["id"])


@export()
def nvmlDeviceGetComputeInstanceId(handle: Any, out: Any) -> None:
    target = abi.device(handle)
    if target.ci is None:
        raise NvmlFault(codes.NOT_SUPPORTED)
    put(out, target.ci["id"])


@export()
def nvmlDeviceGetMaxMigDeviceCount(handle: Any, out: Any) -> None:
    put(out, m.max_mig_devices(abi.gpu_device(handle)))


@export()
def nvmlDeviceGetMigDeviceHandleByIndex(handle: Any, index: int, out: Any) -> None:
    gpu = abi.gpu_device(handle)
    m.require_mig_enabled(gpu)
    devices = m.mig_devices(gpu)
    if index >= m.max_mig_devices(gpu):
        raise NvmlFault(codes.INVALID_ARGUMENT)
    if index >= len(devices):
        raise NvmlFault(codes.NOT_FOUND)
    gi, ci = devices[index]
    abi.write_handle(out, "nvmlDevice_t", make_handle(MIG_DEVICE, gpu["index"], gi["id"], ci["id"]))


@export()
def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle: Any, out: Any) -> None:
    target = abi.device(handle)
    if not target.is_mig:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    abi.write_handle(out, "nvmlDevice_t", make_handle(DEVICE, target.gpu["index"]))
