"""Discover the node's GPUs through NVML into an ``Inventory`` (read-only: changes nothing).

Where a GPU sits comes from sysfs, as Kubernetes' ``deviceattribute`` helpers and NVIDIA's tools read it: NVML
answers ``nvmlDeviceGetNumaNodeId`` with NOT_SUPPORTED on x86 hosts. For the GPU at PCI address ``<bdf>``
(``0000:07:00.0``), ``<sysfs>/bus/pci/devices/<bdf>/numa_node`` is its NUMA node (-1: none) and the link
``<sysfs>/bus/pci/devices/<bdf>`` resolves to ``<sysfs>/devices/pci0000:00/.../<bdf>``, whose first component
names its PCIe root complex.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynvml

from dra_driver import errors
from dra_driver.gpu_facts import architecture_name, cuda_cores_per_sm
from dra_driver.inventory import Gpu, GpuInstance, Inventory, MigDevice, MigProfile, Placement, UnhealthyGpu
from dra_driver.nvml.session import Nvml

MIB = 1024 * 1024
SYSFS_ROOT = Path("/sys")
_PCIE_ROOT = re.compile(r"pci[0-9a-f]{4,}:[0-9a-f]{2}")  # pci<domain>:<bus>, as the kernel names a host bridge


def discover(nvml: Nvml, sysfs_root: Path = SYSFS_ROOT) -> Inventory:
    """Everything the driver needs to know about the node's GPUs. A lost GPU is reported, not fatal.

    ``sysfs_root``: the kernel's sysfs (the host's ``/sys``, or where it is mounted), for NUMA node and PCIe root.
    """
    cuda = int(nvml.call("nvmlSystemGetCudaDriverVersion"))
    gpus: list[Gpu] = []
    unhealthy: list[UnhealthyGpu] = []
    for index in range(nvml.device_count()):
        try:
            gpus.append(_gpu(nvml, index, sysfs_root))
        except errors.GpuLost as exc:
            unhealthy.append(UnhealthyGpu(index, str(exc)))
    return Inventory(
        driver_version=str(nvml.call("nvmlSystemGetDriverVersion")),
        cuda_driver_version=f"{cuda // 1000}.{cuda % 1000 // 10}",
        nvml_version=str(nvml.call("nvmlSystemGetNVMLVersion")),
        gpus=tuple(gpus),
        unhealthy=tuple(unhealthy),
    )


def _gpu(nvml: Nvml, index: int, sysfs_root: Path) -> Gpu:
    h = nvml.device(index)
    major, minor = nvml.call("nvmlDeviceGetCudaComputeCapability", h)
    pci = nvml.call("nvmlDeviceGetPciInfo", h)
    bus_id = _short_bus_id(pci.busId)
    sysfs_device = sysfs_root / "bus" / "pci" / "devices" / bus_id
    cores = nvml.optional("nvmlDeviceGetNumGpuCores", h)
    mig_mode = nvml.optional("nvmlDeviceGetMigMode", h)
    mig_enabled = bool(mig_mode and mig_mode[0])
    uuid = str(nvml.call("nvmlDeviceGetUUID", h))
    profiles = mig_profiles(nvml, h) if mig_enabled else ()
    instances = gpu_instances(nvml, h, profiles)
    return Gpu(
        index=index,
        minor=int(nvml.call("nvmlDeviceGetMinorNumber", h)),
        uuid=uuid,
        serial=nvml.optional("nvmlDeviceGetSerial", h),
        product_name=str(nvml.call("nvmlDeviceGetName", h)),
        brand=int(nvml.call("nvmlDeviceGetBrand", h)),
        architecture=architecture_name(int(nvml.call("nvmlDeviceGetArchitecture", h))),
        cuda_compute_capability=f"{major}.{minor}",
        memory_bytes=int(nvml.call("nvmlDeviceGetMemoryInfo", h).total),
        multiprocessors=int(cores) // cuda_cores_per_sm((major, minor)) if cores else 0,
        pci_bus_id=bus_id,
        pci_device_id=int(pci.pciDeviceId),
        pcie_root=_pcie_root(sysfs_root, sysfs_device),
        numa_node=_numa_node(nvml, h, sysfs_device),
        compute_mode=int(nvml.call("nvmlDeviceGetComputeMode", h)),
        mig_capable=mig_mode is not None,
        mig_enabled=mig_enabled,
        mig_pending=bool(mig_mode and mig_mode[1] != mig_mode[0]),
        mig_profiles=profiles,
        gpu_instances=instances,
        mig_devices=_mig_devices(nvml, h, uuid, profiles, instances) if mig_enabled else (),
    )


def _short_bus_id(bus_id: bytes | str) -> str:
    """NVML's "00000000:4E:00.0" as the kernel names the device in sysfs: "0000:4e:00.0" (domain in at least four
    digits, lower-case hex)."""
    text = bus_id.decode() if isinstance(bus_id, bytes) else bus_id
    domain, rest = text.split(":", 1)
    return f"{int(domain, 16):04x}:{rest.lower()}"


def _numa_node(nvml: Nvml, h: Any, sysfs_device: Path) -> int | None:
    """The PCI device's ``numa_node`` in sysfs; NVML's answer where sysfs has none and NVML has one (not on x86)."""
    node = _sysfs_numa_node(sysfs_device)
    if node is not None:
        return node
    try:
        node = nvml.optional("nvmlDeviceGetNumaNodeId", h)
    except errors.NvmlError:
        return None
    return None if node is None or node < 0 else int(node)


def _sysfs_numa_node(sysfs_device: Path) -> int | None:
    """None where the file is missing or unreadable, or says -1 (a machine without NUMA)."""
    try:
        node = int((sysfs_device / "numa_node").read_text().strip())
    except (OSError, ValueError):
        return None
    return node if node >= 0 else None


def _pcie_root(sysfs_root: Path, sysfs_device: Path) -> str | None:
    """``pci0000:00``: the first component of the device's real path under ``<sysfs>/devices``; None if it has none."""
    try:
        device = sysfs_device.resolve(strict=True)
        under = device.relative_to((sysfs_root / "devices").resolve(strict=True))
    except (OSError, ValueError):  # no such device, a dangling link, or a path outside <sysfs>/devices
        return None
    root = under.parts[0] if len(under.parts) > 1 else ""
    return root if _PCIE_ROOT.fullmatch(root) else None


def mig_profiles(nvml: Nvml, h: Any) -> tuple[MigProfile, ...]:
    """The GPU-instance profiles a MIG-enabled GPU offers, with their placements."""
    profiles = []
    for enum in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
        try:
            info = nvml.call("nvmlDeviceGetGpuInstanceProfileInfo", h, enum)
        except errors.NotSupported:
            continue
        except errors.NvmlError as exc:
            if exc.code == pynvml.NVML_ERROR_INVALID_ARGUMENT:
                continue
            raise
        placements = _placements(nvml, h, info.id)
        name = info.name.decode() if isinstance(info.name, bytes) else str(info.name)
        profiles.append(
            MigProfile(
                name=name.removeprefix("MIG "),
                profile_id=int(info.id),
                compute_slices=int(info.sliceCount),
                memory_slices=placements[0].size if placements else 0,
                memory_bytes=int(info.memorySizeMB) * MIB,
                multiprocessors=int(info.multiprocessorCount),
                copy_engines=int(info.copyEngineCount),
                decoders=int(info.decoderCount),
                encoders=int(info.encoderCount),
                jpegs=int(info.jpegCount),
                ofas=int(info.ofaCount),
                instance_count=int(info.instanceCount),
                placements=placements,
            )
        )
    return tuple(sorted(profiles, key=lambda p: (p.memory_slices, p.compute_slices, p.name)))


def _placements(nvml: Nvml, h: Any, profile_id: int) -> tuple[Placement, ...]:
    count = ctypes.c_uint(0)
    nvml.call("nvmlDeviceGetGpuInstancePossiblePlacements", h, profile_id, None, ctypes.byref(count))
    buf = (pynvml.c_nvmlGpuInstancePlacement_t * count.value)()
    nvml.call("nvmlDeviceGetGpuInstancePossiblePlacements", h, profile_id, buf, ctypes.byref(count))
    return tuple(Placement(int(p.start), int(p.size)) for p in buf[: count.value])


def gpu_instances(nvml: Nvml, h: Any, profiles: tuple[MigProfile, ...]) -> tuple[GpuInstance, ...]:
    found = []
    for profile in profiles:
        count = ctypes.c_uint(profile.instance_count)
        buf = (pynvml.c_nvmlGpuInstance_t * profile.instance_count)()
        nvml.call("nvmlDeviceGetGpuInstances", h, profile.profile_id, buf, ctypes.byref(count))
        for gi in buf[: count.value]:
            info = nvml.call("nvmlGpuInstanceGetInfo", gi)
            found.append(
                GpuInstance(
                    int(info.id), int(info.profileId), Placement(int(info.placement.start), int(info.placement.size))
                )
            )
    return tuple(sorted(found, key=lambda g: g.id))


def mig_device_handles(nvml: Nvml, h: Any) -> Iterator[Any]:
    """The handles of the GPU's MIG devices (NVML leaves gaps: NOT_FOUND indices are skipped)."""
    for i in range(int(nvml.call("nvmlDeviceGetMaxMigDeviceCount", h))):
        try:
            yield nvml.call("nvmlDeviceGetMigDeviceHandleByIndex", h, i)
        except errors.NvmlError as exc:
            if exc.code != pynvml.NVML_ERROR_NOT_FOUND:
                raise


def _mig_devices(
    nvml: Nvml, h: Any, parent_uuid: str, profiles: tuple[MigProfile, ...], gpu_instances: tuple[GpuInstance, ...]
) -> tuple[MigDevice, ...]:
    by_id = {p.profile_id: p for p in profiles}
    instances = {gi.id: gi for gi in gpu_instances}
    devices = []
    for mig in mig_device_handles(nvml, h):
        gi_id = int(nvml.call("nvmlDeviceGetGpuInstanceId", mig))
        attrs = nvml.call("nvmlDeviceGetAttributes", mig)
        gi = instances[gi_id]
        devices.append(
            MigDevice(
                uuid=str(nvml.call("nvmlDeviceGetUUID", mig)),
                parent_uuid=parent_uuid,
                gpu_instance_id=gi_id,
                compute_instance_id=int(nvml.call("nvmlDeviceGetComputeInstanceId", mig)),
                profile=by_id[gi.profile_id].name,
                placement=gi.placement,
                memory_bytes=int(nvml.call("nvmlDeviceGetMemoryInfo", mig).total),
                multiprocessors=int(attrs.multiprocessorCount),
                compute_slices=int(attrs.computeInstanceSliceCount),
            )
        )
    return tuple(devices)
