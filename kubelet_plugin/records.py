"""What the plugin records about a prepared claim: the hardware it set up per device. Pure data.

Used by the checkpoint (which persists it), the planner (which produces it) and the hardware
operations (which apply and undo it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from dra_driver.kubeletplugin.protocol import ClaimRef, PreparedDevice

# PrepareStarted: being prepared; the devices are planned, those applied so far carry what was created.
# PrepareCompleted: prepared; the CDI spec is written.
# UnprepareStarted: being undone (an unprepare, or the roll-back of a failed prepare); the devices are
#   what is still to undo, so a retry never undoes one twice.
State: TypeAlias = Literal["PrepareStarted", "PrepareCompleted", "UnprepareStarted"]
STATES: tuple[State, ...] = ("PrepareStarted", "PrepareCompleted", "UnprepareStarted")


@dataclass(frozen=True)
class WholeGpu:
    gpu_uuid: str
    gpu_index: int


@dataclass(frozen=True)
class MigPartition:
    gpu_uuid: str
    gpu_index: int
    profile: str  # GPU-instance profile, e.g. "1g.5gb"
    placement_start: int
    placement_size: int
    gpu_instance_id: int | None = None  # None until created (known after the PrepareStarted phase)
    compute_instance_id: int | None = None
    mig_uuid: str | None = None
    created: bool = True  # created by this claim (destroy on unprepare), False for a pre-existing MIG device


@dataclass(frozen=True)
class TimeSliceReplica:
    gpu_uuid: str
    gpu_index: int
    interval: str  # Default | Short | Medium | Long, applied to the GPU


@dataclass(frozen=True)
class SharedGpu:
    gpu_uuid: str
    gpu_index: int


Hardware: TypeAlias = WholeGpu | MigPartition | TimeSliceReplica | SharedGpu
HARDWARE_KEYS: dict[type, str] = {  # JSON key of each hardware kind
    WholeGpu: "gpu",
    MigPartition: "mig",
    TimeSliceReplica: "timeslice",
    SharedGpu: "shared",
}


@dataclass(frozen=True)
class MpsSettings:
    control_daemon: str  # the MPS control daemon serving this device: gpu-<minor> or the MIG device's name
    pipe_directory: str  # the daemon's CUDA_MPS_PIPE_DIRECTORY (its log directory is <pipe>/log)
    active_thread_percentage: int | None = None
    pinned_memory_limits: tuple[tuple[str, int], ...] = ()  # (device index or UUID, bytes)


@dataclass(frozen=True)
class DeviceRecord:
    """One prepared device: what the kubelet was told, and what was done to the hardware."""

    request_names: tuple[str, ...]
    pool: str
    device: str
    hardware: Hardware
    cdi_device_ids: tuple[str, ...] = ()
    share_id: str | None = None
    mps: MpsSettings | None = None

    def to_kubelet(self) -> PreparedDevice:
        return PreparedDevice(self.request_names, self.pool, self.device, self.cdi_device_ids, self.share_id)


@dataclass(frozen=True)
class ClaimRecord:
    claim: ClaimRef
    state: State
    devices: tuple[DeviceRecord, ...] = ()
    cdi_spec: str | None = None  # file name in the CDI spec directory


@dataclass(frozen=True)
class Document:
    boot_id: str | None  # None: unknown (migrated from version 1)
    claims: Mapping[str, ClaimRecord]
    generation: int = 0  # +1 on every write: which of the durable and the volatile copy is newer
