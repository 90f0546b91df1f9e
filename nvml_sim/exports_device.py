"""Exported NVML symbols: initialisation, system queries and device queries."""

from __future__ import annotations

from typing import Any

from nvml_sim import abi, codes
from nvml_sim.abi import DEVICE, export, make_handle, need, put, put_str
from nvml_sim.hardware import MIB
from nvml_sim.machine import (
    NvmlFault,
    State,
    ci_profile_by_id,
    gi_profile_of,
    model_of,
    set_compute_mode,
)
from nvml_sim.telemetry import telemetry

NVML_BRAND_NVIDIA = 14
MEMORY_V2 = 0x02000028


@export(needs_init=False, aliases=("nvmlInit", "nvmlInit_v2"))
def nvmlInitWithFlags(flags: int = 0) -> int:
    return abi.open_session()


@export(needs_init=False)
def nvmlShutdown() -> int:
    if abi.SESSION.count == 0:
        return codes.UNINITIALIZED
    abi.SESSION.count -= 1
    return codes.SUCCESS


@export()
def nvmlSystemGetDriverVersion(buf: Any, length: int) -> None:
    put_str(buf, length, abi.state()["driverVersion"])


@export()
def nvmlSystemGetNVMLVersion(buf: Any, length: int) -> None:
    put_str(buf, length, "13." + abi.state()["driverVersion"])


@export(aliases=("nvmlSystemGetCudaDriverVersion_v2",))
def nvmlSystemGetCudaDriverVersion(out: Any) -> None:
    put(out, abi.state()["cudaDriverVersion"])


@export(aliases=("nvmlDeviceGetCount_v2",))
def nvmlDeviceGetCount(out: Any) -> None:
    put(out, len(abi.state()["gpus"]))


@export(aliases=("nvmlDeviceGetHandleByIndex_v2",))
def nvmlDeviceGetHandleByIndex(index: int, out: Any) -> None:
    if index >= len(abi.state()["gpus"]):
        raise NvmlFault(codes.INVALID_ARGUMENT)
    abi.write_handle(out, "nvmlDevice_t", make_handle(DEVICE, index))


def _find_gpu(st: State, match: Any) -> int:
    for gpu in st["gpus"]:
        if match(gpu):
            return int(gpu["index"])
    raise NvmlFault(codes.NOT_FOUND)


@export()
def nvmlDeviceGetHandleByUUID(uuid: Any, out: Any) -> None:
    need(uuid)
    wanted = abi.ffi.string(uuid).decode()
    st = abi.state()
    for gpu in st["gpus"]:
        for gi in gpu["gpuInstances"]:
            for ci in gi["computeInstances"]:
                if ci["uuid"] == wanted:
                    handle = make_handle(abi.MIG_DEVICE, gpu["index"], gi["id"], ci["id"])
                    abi.write_handle(out, "nvmlDevice_t", handle)
                    return
    index = _find_gpu(st, lambda g: g["uuid"] == wanted)
    abi.write_handle(out, "nvmlDevice_t", make_handle(DEVICE, index))


def _bus_id(gpu: dict[str, Any]) -> str:
    return f"00000000:{gpu['pciBus']:02X}:00.0"


@export(aliases=("nvmlDeviceGetHandleByPciBusId_v2",))
def nvmlDeviceGetHandleByPciBusId(bus_id: Any, out: Any) -> None:
    need(bus_id)
    wanted = abi.ffi.string(bus_id).decode().upper()
    if len(wanted.split(":")) == 2:  # "BB:DD.F" without domain
        wanted = "00000000:" + wanted
    elif wanted.count(":") == 2 and len(wanted.split(":")[0]) == 4:
        wanted = "0000" + wanted
    index = _find_gpu(abi.state(), lambda g: _bus_id(g) == wanted)
    abi.write_handle(out, "nvmlDevice_t", make_handle(DEVICE, index))


@export()
def nvmlDeviceGetName(handle: Any, buf: Any, length: int) -> None:
    target = abi.device(handle)
    name = model_of(target.gpu).product_name
    if target.gi is not None and target.ci is not None:
        ci_profile = ci_profile_by_id(target.gpu, target.gi, target.ci["profileId"])
        name = f"{name} MIG {ci_profile.name}"
    put_str(buf, length, name)


@export()
def nvmlDeviceGetUUID(handle: Any, buf: Any, length: int) -> None:
    target = abi.device(handle)
    put_str(buf, length, target.ci["uuid"] if target.ci is not None else target.gpu["uuid"])


@export()
def nvmlDeviceGetSerial(handle: Any, buf: Any, length: int) -> None:
    put_str(buf, length, abi.gpu_device(handle)["serial"])


@export()
def nvmlDeviceGetIndex(handle: Any, out: Any) -> None:
    put(out, abi.gpu_device(handle)["index"])


@export()
def nvmlDeviceGetMinorNumber(handle: Any, out: Any) -> None:
    put(out, abi.gpu_device(handle)["minor"])


@export()
def nvmlDeviceGetBrand(handle: Any, out: Any) -> None:
    abi.device(handle)
    put(out, NVML_BRAND_NVIDIA)


def _pci_fields(handle: Any) -> dict[str, Any]:
    gpu = abi.gpu_device(handle)
    return {
        "domain": 0,
        "bus": gpu["pciBus"],
        "device": 0,
        "pciDeviceId": model_of(gpu).pci_device_id,
        "pciSubSystemId": (0x1450 + gpu["index"]) << 16 | 0x10DE,
        "bus_id": _bus_id(gpu),
    }


@export(aliases=("nvmlDeviceGetPciInfo_v3",))
def nvmlDeviceGetPciInfo(handle: Any, out: Any) -> None:
    need(out)
    fields = _pci_fields(handle)
    bus_id = fields.pop("bus_id").encode()
    abi.fill(out, **fields)
    abi.ffi.memmove(out.busIdLegacy, bus_id[-12:] + b"\0", 13)  # legacy 16-byte field: "0000:BB:DD.F"
    abi.ffi.memmove(out.busId, bus_id + b"\0", len(bus_id) + 1)


@export()
def nvmlDeviceGetPciInfo_v2(handle: Any, out: Any) -> None:
    need(out)
    fields = _pci_fields(handle)
    bus_id = fields.pop("bus_id").encode()
    abi.fill(out, **fields)
    abi.ffi.memmove(out.busId, bus_id[-12:] + b"\0", 13)


def _memory(handle: Any) -> tuple[int, int]:
    """(total, reserved) bytes. A MIG device reports its GPU instance's memory, with nothing reserved; a GPU
    has the driver's and firmware's share set aside (nothing is allocated: no process runs on a simulated GPU).
    """
    target = abi.device(handle)
    if target.gi is not None:
        return gi_profile_of(target.gpu, target.gi).memory_mib * MIB, 0
    return model_of(target.gpu).memory_mib * MIB, telemetry(target.gpu).reserved_mib * MIB


@export()
def nvmlDeviceGetMemoryInfo(handle: Any, out: Any) -> None:
    """v1: ``used`` is reserved plus allocated memory (nvml.h: "Sum of Reserved and Allocated")."""
    need(out)
    total, reserved = _memory(handle)
    abi.fill(out, total=total, free=total - reserved, used=reserved)


@export()
def nvmlDeviceGetMemoryInfo_v2(handle: Any, out: Any) -> None:
    """v2: ``reserved`` on its own, ``used`` is allocated memory only, ``free = total - reserved - used``."""
    need(out)
    if out.version != MEMORY_V2:
        raise NvmlFault(codes.ARGUMENT_VERSION_MISMATCH)
    total, reserved = _memory(handle)
    abi.fill(out, total=total, reserved=reserved, free=total - reserved, used=0)


@export()
def nvmlDeviceGetArchitecture(handle: Any, out: Any) -> None:
    put(out, model_of(abi.device(handle).gpu).architecture)


@export()
def nvmlDeviceGetCudaComputeCapability(handle: Any, major: Any, minor: Any) -> None:
    need(major, minor)
    cc = model_of(abi.device(handle).gpu).compute_capability
    major[0], minor[0] = cc


@export()
def nvmlDeviceGetNumGpuCores(handle: Any, out: Any) -> None:
    model = model_of(abi.gpu_device(handle))
    # FP32 cores per SM of the simulated chip: 64 on GA100/GV100/GP100, 128 on GA10x, AD10x and GH100
    per_sm = 64 if model.compute_capability in ((8, 0), (7, 0), (6, 0)) else 128
    put(out, model.multiprocessors * per_sm)


@export()
def nvmlDeviceGetNumaNodeId(handle: Any, out: Any) -> None:
    """NOT_SUPPORTED, as real NVML answers on x86 servers (it is for GPUs that are NUMA nodes themselves): the
    GPU's NUMA node is in the machine's sysfs (``sysfs.py``), where a driver reads it on a real host."""
    abi.gpu_device(handle)
    raise NvmlFault(codes.NOT_SUPPORTED)


@export()
def nvmlDeviceGetComputeMode(handle: Any, out: Any) -> None:
    put(out, abi.gpu_device(handle)["computeMode"])


@export()
def nvmlDeviceSetComputeMode(handle: Any, mode: int) -> None:
    abi.gpu_device(handle)
    with abi.store().mutate() as st:
        set_compute_mode(abi.gpu_device(handle, st), mode)


@export(aliases=("nvmlDeviceGetAttributes_v2",))
def nvmlDeviceGetAttributes(handle: Any, out: Any) -> None:
    need(out)
    target = abi.device(handle)
    if target.gi is None or target.ci is None:
        raise NvmlFault(codes.NOT_SUPPORTED)
    gi_profile = gi_profile_of(target.gpu, target.gi)
    ci_profile = ci_profile_by_id(target.gpu, target.gi, target.ci["profileId"])
    abi.fill(
        out,
        multiprocessorCount=ci_profile.multiprocessors,
        sharedCopyEngineCount=gi_profile.copy_engines,
        sharedDecoderCount=gi_profile.decoders,
        sharedEncoderCount=gi_profile.encoders,
        sharedJpegCount=gi_profile.jpegs,
        sharedOfaCount=gi_profile.ofas,
        gpuInstanceSliceCount=gi_profile.slice_count,
        computeInstanceSliceCount=ci_profile.slice_count,
        memorySizeMB=gi_profile.memory_mib,
    )
