"""Hardware facts of the simulated machines: GPU models and the named machine profiles. Pure.

GPU models come from ``gpu_models.json`` (regenerated from ``shared/hardware/mig-profiles.json`` by
``tools/import_gpu_models.py``). Compute-instance profiles are not in that file for most models, so
they are derived here from slice arithmetic (see docs/simulated-nvml.md).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

MIB = 1024 * 1024

# NVML_COMPUTE_INSTANCE_PROFILE_* enum value for a compute instance of N compute slices.
CI_ENUM_BY_SLICES = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4, 8: 5, 6: 6}
GPU_INSTANCE_PROFILE_COUNT = 0x12
COMPUTE_INSTANCE_PROFILE_COUNT = 0x9


@dataclass(frozen=True)
class Placement:
    start: int
    size: int

    def slices(self) -> range:
        return range(self.start, self.start + self.size)


@dataclass(frozen=True)
class GpuInstanceProfile:
    enum: int  # NVML_GPU_INSTANCE_PROFILE_* (the "profile" argument)
    profile_id: int  # the driver's profile id (nvidia-smi "ID" column)
    name: str  # e.g. "1g.5gb"
    slice_count: int  # compute slices
    instance_count: int
    multiprocessors: int
    copy_engines: int
    decoders: int
    encoders: int
    jpegs: int
    ofas: int
    memory_mib: int
    p2p: int
    placements: tuple[Placement, ...]


@dataclass(frozen=True)
class ComputeInstanceProfile:
    enum: int  # == profile id for compute instances
    name: str
    slice_count: int
    instance_count: int
    multiprocessors: int

    def placements(self, gi_slices: int) -> tuple[Placement, ...]:
        return tuple(
            Placement(start, self.slice_count) for start in range(0, gi_slices - self.slice_count + 1, self.slice_count)
        )[: self.instance_count]


@dataclass(frozen=True)
class GpuModel:
    key: str
    product_name: str
    memory_mib: int
    architecture: int  # nvmlDeviceArchitecture_t
    compute_capability: tuple[int, int]
    multiprocessors: int
    mig_capable: bool
    pci_device_id: int
    memory_slices: int
    compute_slices: int
    gi_profiles: tuple[GpuInstanceProfile, ...]

    def gi_profile_by_enum(self, enum: int) -> GpuInstanceProfile | None:
        return next((p for p in self.gi_profiles if p.enum == enum), None)

    def gi_profile_by_id(self, profile_id: int) -> GpuInstanceProfile | None:
        return next((p for p in self.gi_profiles if p.profile_id == profile_id), None)

    @property
    def resets_to_change_mig_mode(self) -> bool:
        """Ampere needs a GPU reset before a MIG mode change takes effect; Hopper applies it at once."""
        return self.architecture == 7


def compute_instance_profiles(gi: GpuInstanceProfile) -> tuple[ComputeInstanceProfile, ...]:
    """CI profiles offered inside a GPU instance: 1c, 2c, 4c, 3c (on 3- and 7-slice GIs) and the full GI."""
    total = gi.slice_count
    sizes = sorted({c for c in (1, 2, 4) if c < total} | ({3} if total == 7 else set()) | {total})
    out = []
    for c in sizes:
        name = gi.name if c == total else f"{c}c.{gi.name}"
        sms = gi.multiprocessors if c == total else gi.multiprocessors * c // total
        out.append(ComputeInstanceProfile(CI_ENUM_BY_SLICES[c], name, c, total // c, sms))
    return tuple(out)


def _gi_profile(raw: dict[str, Any]) -> GpuInstanceProfile:
    placements = raw["placements"]
    return GpuInstanceProfile(
        enum=int(raw["nvml_profile_enum_value"]),
        profile_id=int(raw["profile_id"]),
        name=str(raw["name"]),
        slice_count=int(raw["slice_count"]),
        instance_count=int(raw["instance_count"]),
        multiprocessors=int(raw["multiprocessor_count"]),
        copy_engines=int(raw["copy_engine_count"]),
        decoders=int(raw["decoder_count"]),
        encoders=int(raw["encoder_count"]),
        jpegs=int(raw["jpeg_count"]),
        ofas=int(raw["ofa_count"]),
        memory_mib=int(raw["memory_size_mib"]),
        p2p=int(raw["is_p2p_supported"]),
        placements=tuple(Placement(int(p["start"]), int(p["size"])) for p in placements),
    )


@cache
def gpu_models() -> dict[str, GpuModel]:
    data = json.loads(resources.files(__package__).joinpath("gpu_models.json").read_text())
    models = {}
    for key, raw in data["models"].items():
        major, minor = raw["cuda_compute_capability"].split(".")
        models[key] = GpuModel(
            key=key,
            product_name=raw["product_name"],
            memory_mib=raw["total_memory_mib"],
            architecture=raw["nvml_device_arch"],
            compute_capability=(int(major), int(minor)),
            multiprocessors=raw["sm_count"],
            mig_capable=raw["mig_capable"],
            pci_device_id=int(raw["nvml_pci_device_id"], 16),
            memory_slices=raw["max_memory_slices"],
            compute_slices=raw["max_compute_slices"],
            gi_profiles=tuple(_gi_profile(p) for p in raw["gpu_instance_profiles"]),
        )
    return models


@dataclass(frozen=True)
class GpuSlot:
    """Where a GPU sits: its PCI bus, NUMA node, PCIe root complex (host bridge ``pci0000:<root>``) and, when
    it shares one with other GPUs, the PCIe switch above it (GPUs under one switch talk without the host bridge).
    """

    model: str
    pci_bus: int
    numa_node: int
    pcie_root: int = 0
    pcie_switch: int | None = None


@dataclass(frozen=True)
class CpuLayout:
    """The host's CPUs: one NUMA node per socket, Linux numbering (all first hardware threads, then the second)."""

    sockets: int = 2
    cores_per_socket: int = 32
    threads_per_core: int = 2

    @property
    def count(self) -> int:
        return self.sockets * self.cores_per_socket * self.threads_per_core

    def cpus_of_node(self, node: int) -> tuple[int, ...]:
        cores = self.sockets * self.cores_per_socket
        first = range(node * self.cores_per_socket, (node + 1) * self.cores_per_socket)
        return tuple(c + t * cores for t in range(self.threads_per_core) for c in first)


@dataclass(frozen=True)
class MachineProfile:
    name: str
    description: str
    gpus: tuple[GpuSlot, ...]
    driver_version: str = "580.95.05"
    cuda_driver_version: int = 13000
    cpu: CpuLayout = CpuLayout()


def _slots(model: str, buses: tuple[int, ...], paired: bool = False, nodes: int = 2) -> tuple[GpuSlot, ...]:
    """GPUs spread evenly over ``nodes`` NUMA nodes. Each GPU has its own root complex (``bus & 0xF0``), or with
    ``paired`` two neighbours share a PCIe switch under one root complex (the first GPU's ``bus & 0xE0``)."""
    per_node = max(1, -(-len(buses) // nodes))
    out = []
    for i, bus in enumerate(buses):
        lead = buses[i - i % 2] if paired else bus
        root = lead & 0xE0 if paired else bus & 0xF0
        out.append(GpuSlot(model, bus, i // per_node, root, (lead - 2) if paired else None))
    return tuple(out)


DGX_A100_BUSES = (0x07, 0x0F, 0x47, 0x4E, 0x87, 0x90, 0xB7, 0xBD)
DGX_H100_BUSES = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)

MACHINE_PROFILES: dict[str, MachineProfile] = {
    p.name: p
    for p in (
        MachineProfile(
            "dgx-a100",
            "8x A100-SXM4-40GB (DGX A100)",
            _slots("A100-SXM4-40GB", DGX_A100_BUSES, paired=True),
            cpu=CpuLayout(2, 64, 2),  # 2x AMD EPYC 7742
        ),
        MachineProfile(
            "dgx-h100",
            "8x H100 80GB HBM3 (DGX H100)",
            _slots("H100-SXM5-80GB", DGX_H100_BUSES),
            cpu=CpuLayout(2, 56, 2),  # 2x Intel Xeon Platinum 8480C
        ),
        MachineProfile(
            "a100-80gb-a30",
            "2x A100-SXM4-80GB + 2x A30 (mixed node)",
            _slots("A100-SXM4-80GB", (0x17, 0x31)) + _slots("A30-24GB", (0xB1, 0xCA)),
        ),
        MachineProfile("l4", "4x L4 (no MIG)", _slots("L4-24GB", (0x01, 0x02, 0x81, 0x82)), cpu=CpuLayout(2, 24, 2)),
        MachineProfile(
            "single-a100", "1x A100-SXM4-40GB", _slots("A100-SXM4-40GB", (0x07,), nodes=1), cpu=CpuLayout(1, 64, 2)
        ),
    )
}


def gpu_uuid(profile: str, index: int, host: str = "") -> str:
    return "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"dra-sim/{host}/{profile}/{index}"))


def mig_uuid(parent_uuid: str, gi: int, ci: int, generation: int) -> str:
    return "MIG-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{parent_uuid}/{gi}/{ci}/{generation}"))
