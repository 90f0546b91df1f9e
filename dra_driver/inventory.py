"""The node's GPU inventory as discovered through NVML: frozen dataclasses and their JSON form. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Placement:
    """Memory slices a GPU instance occupies: ``start`` .. ``start + size - 1``."""

    start: int
    size: int


@dataclass(frozen=True)
class MigProfile:
    """A GPU-instance profile the GPU offers (``nvidia-smi mig -lgip``)."""

    name: str  # "1g.5gb"
    profile_id: int  # the driver's id (19 for 1g.5gb on A100)
    compute_slices: int
    memory_slices: int  # size of each placement
    memory_bytes: int
    multiprocessors: int
    copy_engines: int
    decoders: int
    encoders: int
    jpegs: int
    ofas: int
    instance_count: int
    placements: tuple[Placement, ...]


@dataclass(frozen=True)
class GpuInstance:
    id: int
    profile_id: int
    placement: Placement


@dataclass(frozen=True)
class MigDevice:
    """A MIG device: a compute instance inside a GPU instance, with its own UUID."""

    uuid: str
    parent_uuid: str
    gpu_instance_id: int
    compute_instance_id: int
    profile: str  # GPU-instance profile name, e.g. "3g.20gb"
    placement: Placement
    memory_bytes: int
    multiprocessors: int
    compute_slices: int


@dataclass(frozen=True)
class Gpu:
    index: int
    minor: int
    uuid: str
    serial: str | None
    product_name: str
    brand: int
    architecture: str
    cuda_compute_capability: str  # "8.0"
    memory_bytes: int
    multiprocessors: int
    pci_bus_id: str  # "0000:07:00.0"
    pci_device_id: int
    numa_node: int | None  # the PCI device's NUMA node (sysfs); None on a machine without NUMA
    pcie_root: str | None  # the PCIe root complex above the GPU, as sysfs names it: "pci0000:00"
    compute_mode: int
    mig_capable: bool
    mig_enabled: bool
    mig_pending: bool
    mig_profiles: tuple[MigProfile, ...]
    gpu_instances: tuple[GpuInstance, ...]
    mig_devices: tuple[MigDevice, ...]

    def mig_profile(self, name: str) -> MigProfile | None:
        return next((p for p in self.mig_profiles if p.name == name), None)

    @property
    def memory_slices(self) -> int:
        return max((p.start + p.size for m in self.mig_profiles for p in m.placements), default=0)


@dataclass(frozen=True)
class UnhealthyGpu:
    index: int
    reason: str


@dataclass(frozen=True)
class Inventory:
    driver_version: str
    cuda_driver_version: str  # "13.0"
    nvml_version: str
    gpus: tuple[Gpu, ...]
    unhealthy: tuple[UnhealthyGpu, ...] = ()

    def gpu(self, index: int) -> Gpu:
        return next(g for g in self.gpus if g.index == index)


def _placement_json(p: Placement) -> dict[str, int]:
    return {"start": p.start, "size": p.size}


def _profile_json(p: MigProfile) -> dict[str, Any]:
    return {
        "name": p.name,
        "profileId": p.profile_id,
        "computeSlices": p.compute_slices,
        "memorySlices": p.memory_slices,
        "memoryBytes": p.memory_bytes,
        "multiprocessors": p.multiprocessors,
        "engines": {
            "copy": p.copy_engines,
            "decoder": p.decoders,
            "encoder": p.encoders,
            "jpeg": p.jpegs,
            "ofa": p.ofas,
        },
        "instanceCount": p.instance_count,
        "placements": [_placement_json(x) for x in p.placements],
    }


def _mig_device_json(d: MigDevice) -> dict[str, Any]:
    return {
        "uuid": d.uuid,
        "parentUUID": d.parent_uuid,
        "gpuInstanceId": d.gpu_instance_id,
        "computeInstanceId": d.compute_instance_id,
        "profile": d.profile,
        "placement": _placement_json(d.placement),
        "memoryBytes": d.memory_bytes,
        "multiprocessors": d.multiprocessors,
        "computeSlices": d.compute_slices,
    }


def gpu_json(g: Gpu) -> dict[str, Any]:
    return {
        "index": g.index,
        "minor": g.minor,
        "uuid": g.uuid,
        "serial": g.serial,
        "productName": g.product_name,
        "brand": g.brand,
        "architecture": g.architecture,
        "cudaComputeCapability": g.cuda_compute_capability,
        "memoryBytes": g.memory_bytes,
        "multiprocessors": g.multiprocessors,
        "pciBusID": g.pci_bus_id,
        "pciDeviceID": f"0x{g.pci_device_id:08X}",
        "numaNode": g.numa_node,
        "pcieRoot": g.pcie_root,
        "computeMode": g.compute_mode,
        "migCapable": g.mig_capable,
        "migEnabled": g.mig_enabled,
        "migPending": g.mig_pending,
        "migProfiles": [_profile_json(p) for p in g.mig_profiles],
        "gpuInstances": [
            {"id": gi.id, "profileId": gi.profile_id, "placement": _placement_json(gi.placement)}
            for gi in g.gpu_instances
        ],
        "migDevices": [_mig_device_json(d) for d in g.mig_devices],
    }


def inventory_json(inv: Inventory) -> dict[str, Any]:
    return {
        "driverVersion": inv.driver_version,
        "cudaDriverVersion": inv.cuda_driver_version,
        "nvmlVersion": inv.nvml_version,
        "gpus": [gpu_json(g) for g in inv.gpus],
        "unhealthy": [{"index": u.index, "reason": u.reason} for u in inv.unhealthy],
    }
