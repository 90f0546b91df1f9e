"""What the driver does to GPUs, behind one small interface: ``GpuHardware``.

``apply`` returns the record completed with what was created (MIG ids and UUID); ``undo`` reverses one
record and resets GPU-wide settings only when no remaining user of the GPU needs them (``undo_steps``, a
pure decision shared by every implementation). ``unavailable`` says, before anything changes, that a device
needs a driver tool this node lacks. Start-up repair and the MPS supervisor also list and destroy GPU
instances, read and reset time-slice intervals and compute modes, and list, start and stop MPS daemons.
``HardwareOps`` implements it with NVML (real or simulated) and the driver root's tools (``sharing.py``,
``mps.py``); ``tests.kubelet_plugin.fakes.FakeHardware`` in memory, for unit tests.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, assert_never

from dra_driver import errors
from dra_driver.driver_root import DriverFiles
from dra_driver.nvml import mig, settings
from dra_driver.nvml.session import Nvml
from kubelet_plugin.cdi_specs import device_uuid
from kubelet_plugin.mps import DaemonSpec, MpsControl
from kubelet_plugin.records import DeviceRecord, MigPartition, SharedGpu, TimeSliceReplica, WholeGpu
from kubelet_plugin.sharing import MPS_CONTROL, NVIDIA_SMI, UNKNOWN, DriverTools, TimeSlicer

log = logging.getLogger(__name__)

# What a GpuHardware raises when the hardware refuses or does not answer (NVML, nvidia-smi, files).
HARDWARE_ERRORS: tuple[type[Exception], ...] = (errors.DriverError, OSError, subprocess.SubprocessError)
DEFAULT_MODE, EXCLUSIVE_PROCESS = settings.DEFAULT, settings.EXCLUSIVE_PROCESS
MODE_NAMES = {DEFAULT_MODE: "DEFAULT", EXCLUSIVE_PROCESS: "EXCLUSIVE_PROCESS"}


@dataclass(frozen=True)
class GpuInstance:
    """A MIG GPU instance found on a GPU."""

    id: int
    profile: str  # GPU-instance profile name, e.g. "1g.5gb"
    start: int  # placement start (memory slice)


class GpuHardware(Protocol):
    """The hardware side of preparing claims. Errors: one of ``HARDWARE_ERRORS``."""

    def unavailable(self, record: DeviceRecord) -> str | None:
        """Why ``record`` cannot be prepared on this node (a tool it needs is missing), or None."""
        ...

    def apply(self, record: DeviceRecord) -> DeviceRecord:
        """Do what ``record`` needs; returns it completed with what was created. All or nothing."""
        ...

    def undo(self, record: DeviceRecord, remaining: Iterable[DeviceRecord]) -> None:
        """Reverse ``record``; ``remaining`` are the devices other claims still hold. Idempotent."""
        ...

    def gpu_instances(self, gpu_index: int) -> list[GpuInstance]: ...

    def destroy_gpu_instance(self, gpu_index: int, gpu_instance_id: int) -> bool:
        """Destroy it with its compute instances; False if it did not exist."""
        ...

    def interval(self, gpu_uuid: str) -> str:
        """The GPU's time-slice interval ("unknown" where it cannot be read)."""
        ...

    def set_interval(self, gpu_uuid: str, interval: str) -> None: ...

    def compute_mode(self, gpu_index: int) -> int: ...

    def set_compute_mode(self, gpu_index: int, mode: int) -> None: ...

    def mps_daemons(self) -> dict[str, int | None]:
        """Every MPS pipe directory the plugin has, with the PID of its running daemon (None: none runs)."""
        ...

    def start_mps(self, record: DeviceRecord) -> bool:
        """Start the MPS daemon of a prepared ``record`` unless it runs; True when it was (re)started."""
        ...

    def stop_mps(self, pipe_directory: str) -> bool:
        """Stop the daemon of ``pipe_directory`` and remove it; True when one was running."""
        ...


@dataclass(frozen=True)
class UndoSteps:
    """What undoing one device does, given the other users of its GPU."""

    destroy_gpu_instance: int | None  # the MIG GPU instance this claim created
    reset_interval: bool  # the GPU's last time-sliced user leaves, and it had set an interval
    stop_mps: bool  # the last user of the device's MPS daemon leaves
    reset_compute_mode: bool  # the GPU's last MPS user of a whole GPU leaves


def undo_steps(record: DeviceRecord, remaining: Iterable[DeviceRecord]) -> UndoSteps:
    others = [r for r in remaining if r.hardware.gpu_uuid == record.hardware.gpu_uuid]
    hw = record.hardware
    created = hw.gpu_instance_id if isinstance(hw, MigPartition) and hw.created else None
    last_slicer = not any(isinstance(r.hardware, TimeSliceReplica) for r in others)
    mps = record.mps
    return UndoSteps(
        destroy_gpu_instance=created,
        reset_interval=isinstance(hw, TimeSliceReplica) and hw.interval != "Default" and last_slicer,
        stop_mps=mps is not None and not any(r.mps and r.mps.pipe_directory == mps.pipe_directory for r in others),
        reset_compute_mode=mps is not None and not isinstance(hw, MigPartition) and not any(r.mps for r in others),
    )


def files_only(record: DeviceRecord) -> bool:
    """Preparing and undoing ``record`` touch no GPU and start no daemon (a whole GPU or a share without MPS, a
    MIG device that existed before the claim): the claim's work is its CDI spec and checkpoint writes."""
    hw = record.hardware
    if record.mps is not None or isinstance(hw, TimeSliceReplica):
        return False
    return not isinstance(hw, MigPartition) or (hw.gpu_instance_id is not None and not hw.created)


def daemon_spec(record: DeviceRecord) -> DaemonSpec:
    """The MPS daemon a device with MPS needs. A daemon serves one claim's whole GPU or MIG device with that
    claim's limits as its defaults; the daemon of a GPU shared by several claims (shares, time-slice replicas)
    keeps MPS's defaults, and each claim's limits reach its clients through the CDI environment."""
    assert record.mps is not None
    m, uuid = record.mps, device_uuid(record)
    dedicated = isinstance(record.hardware, WholeGpu | MigPartition)
    limits = tuple((uuid if key == "default" else key, value) for key, value in m.pinned_memory_limits)
    return DaemonSpec(
        Path(m.pipe_directory),
        uuid,
        m.active_thread_percentage if dedicated else None,
        limits if dedicated else (),
    )


class HardwareOps:
    """``GpuHardware`` through NVML, the time-slice interval through ``nvidia-smi`` and MPS through
    ``nvidia-cuda-mps-control``, both of the driver root."""

    def __init__(self, nvml: Nvml, tools: DriverTools, mps_root: Path) -> None:
        self.nvml = nvml
        self.tools = tools
        self.time_slicer = TimeSlicer(tools)
        self.mps = MpsControl(tools, mps_root)

    @classmethod
    def for_driver(cls, nvml: Nvml, files: DriverFiles, mps_root: Path) -> HardwareOps:
        return cls(nvml, DriverTools.of(files), mps_root)

    def unavailable(self, record: DeviceRecord) -> str | None:
        hw = record.hardware
        if isinstance(hw, TimeSliceReplica) and hw.interval != "Default" and not self.time_slicer.available():
            return self.tools.missing(NVIDIA_SMI, f"device {record.device}: the {hw.interval} time-slice interval")
        if record.mps is not None and not self.mps.available():
            return self.tools.missing(MPS_CONTROL, f"device {record.device}: MPS sharing")
        return None

    def apply(self, record: DeviceRecord) -> DeviceRecord:
        hw = record.hardware
        match hw:
            case MigPartition():
                if hw.gpu_instance_id is None:
                    if record.mps is not None:  # the tool is there before anything is created
                        self.tools.path(MPS_CONTROL, f"device {record.device}: MPS sharing")
                    part = mig.create_partition(self.nvml, hw.gpu_index, hw.profile, hw.placement_start)
                    hw = dataclasses.replace(
                        hw,
                        gpu_instance_id=part.gpu_instance_id,
                        compute_instance_id=part.compute_instance_id,
                        mig_uuid=part.uuid,
                    )
                    created = dataclasses.replace(record, hardware=hw)
                    self._start_mps_or_destroy(created)
                    return created
            case TimeSliceReplica():
                # the default interval needs no nvidia-smi; where there is one, it makes sure
                needed = hw.interval != "Default" or self.time_slicer.available()
                if needed and self.time_slicer.interval(hw.gpu_uuid) != hw.interval:
                    self.time_slicer.set_interval(hw.gpu_uuid, hw.interval)
            case WholeGpu() | SharedGpu():
                pass
            case _:
                assert_never(hw)
        self._start_mps(record)
        return record

    def _start_mps_or_destroy(self, record: DeviceRecord) -> None:
        """MPS for a partition just created; if that fails the partition goes again (all or nothing)."""
        try:
            self._start_mps(record)
        except BaseException:
            hw = record.hardware
            assert isinstance(hw, MigPartition) and hw.gpu_instance_id is not None
            mig.destroy_partition(self.nvml, hw.gpu_index, hw.gpu_instance_id)
            raise

    def _start_mps(self, record: DeviceRecord) -> bool:
        """The device's MPS daemon unless it runs (True: started); a whole GPU in EXCLUSIVE_PROCESS compute mode
        first (MIG devices have none), put back if the daemon does not start."""
        if record.mps is None:
            return False
        spec = daemon_spec(record)
        self.tools.path(MPS_CONTROL, f"device {record.device}: MPS sharing")
        gpu = record.hardware.gpu_index
        before = None if isinstance(record.hardware, MigPartition) else self.compute_mode(gpu)
        if before is not None and before != EXCLUSIVE_PROCESS:
            self.set_compute_mode(gpu, EXCLUSIVE_PROCESS)
        try:
            return self.mps.start(spec)
        except BaseException:
            if before is not None and before != EXCLUSIVE_PROCESS:
                self.set_compute_mode(gpu, before)
            raise

    def undo(self, record: DeviceRecord, remaining: Iterable[DeviceRecord]) -> None:
        steps = undo_steps(record, remaining)
        hw = record.hardware
        if steps.stop_mps and record.mps is not None:
            self.mps.stop(Path(record.mps.pipe_directory))
        if steps.destroy_gpu_instance is not None:
            mig.destroy_partition(self.nvml, hw.gpu_index, steps.destroy_gpu_instance)
        if steps.reset_interval:
            interval = self.time_slicer.interval(hw.gpu_uuid)
            if interval == UNKNOWN:
                # the last time-sliced user leaves: Default is right whatever the unreadable value was
                log.warning("cannot read the time-slice interval of GPU %s: setting Default", hw.gpu_uuid)
            if interval != "Default":
                self.time_slicer.set_interval(hw.gpu_uuid, "Default")
        if steps.reset_compute_mode and self.compute_mode(hw.gpu_index) == EXCLUSIVE_PROCESS:
            self.set_compute_mode(hw.gpu_index, DEFAULT_MODE)

    def gpu_instances(self, gpu_index: int) -> list[GpuInstance]:
        return [GpuInstance(i, profile, start) for i, profile, start in mig.gpu_instances(self.nvml, gpu_index)]

    def destroy_gpu_instance(self, gpu_index: int, gpu_instance_id: int) -> bool:
        return mig.destroy_partition(self.nvml, gpu_index, gpu_instance_id)

    def interval(self, gpu_uuid: str) -> str:
        return self.time_slicer.interval(gpu_uuid)

    def set_interval(self, gpu_uuid: str, interval: str) -> None:
        self.time_slicer.set_interval(gpu_uuid, interval)

    def compute_mode(self, gpu_index: int) -> int:
        return settings.compute_mode(self.nvml, gpu_index)

    def set_compute_mode(self, gpu_index: int, mode: int) -> None:
        settings.set_compute_mode(self.nvml, gpu_index, mode)
        log.info("compute mode of GPU %d set to %s", gpu_index, MODE_NAMES.get(mode, mode))

    def mps_daemons(self) -> dict[str, int | None]:
        return {str(p): pid for p, pid in self.mps.directories().items()}

    def start_mps(self, record: DeviceRecord) -> bool:
        return self._start_mps(record)

    def stop_mps(self, pipe_directory: str) -> bool:
        return self.mps.stop(Path(pipe_directory))
