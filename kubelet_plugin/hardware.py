"""What the driver does to GPUs, behind one small interface: ``GpuHardware``.

``apply`` returns the record completed with what was created (MIG ids and UUID); ``undo`` reverses one
record and resets GPU-wide settings only when no remaining user of the GPU needs them (``undo_steps``, a
pure decision shared by every implementation). Start-up repair also lists and destroys GPU instances and
reads and resets time-slice intervals. ``HardwareOps`` implements it with NVML (real or simulated);
``tests.kubelet_plugin.fakes.FakeHardware`` in memory, for unit tests.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, assert_never

from dra_driver import errors
from dra_driver.nvml import mig, settings
from dra_driver.nvml.session import Nvml
from kubelet_plugin.records import DeviceRecord, MigPartition, SharedGpu, TimeSliceReplica, WholeGpu
from kubelet_plugin.sharing import TimeSlicer

log = logging.getLogger(__name__)

# What a GpuHardware raises when the hardware refuses or does not answer (NVML, nvidia-smi, files).
HARDWARE_ERRORS: tuple[type[Exception], ...] = (errors.DriverError, OSError, subprocess.SubprocessError)


@dataclass(frozen=True)
class GpuInstance:
    """A MIG GPU instance found on a GPU."""

    id: int
    profile: str  # GPU-instance profile name, e.g. "1g.5gb"
    start: int  # placement start (memory slice)


class GpuHardware(Protocol):
    """The hardware side of preparing claims. Errors: one of ``HARDWARE_ERRORS``."""

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


@dataclass(frozen=True)
class UndoSteps:
    """What undoing one device does, given the other users of its GPU."""

    destroy_gpu_instance: int | None  # the MIG GPU instance this claim created
    reset_interval: bool  # the GPU's last time-sliced user leaves
    remove_mps: bool
    reset_compute_mode: bool  # the GPU's last MPS user of a whole GPU leaves


def undo_steps(record: DeviceRecord, remaining: Iterable[DeviceRecord]) -> UndoSteps:
    others = [r for r in remaining if r.hardware.gpu_uuid == record.hardware.gpu_uuid]
    hw = record.hardware
    created = hw.gpu_instance_id if isinstance(hw, MigPartition) and hw.created else None
    last_slicer = not any(isinstance(r.hardware, TimeSliceReplica) for r in others)
    mps = record.mps is not None
    return UndoSteps(
        destroy_gpu_instance=created,
        reset_interval=isinstance(hw, TimeSliceReplica) and last_slicer,
        remove_mps=mps,
        reset_compute_mode=mps and not isinstance(hw, MigPartition) and not any(r.mps for r in others),
    )


class HardwareOps:
    """``GpuHardware`` through NVML, with time-slice intervals through ``time_slicer``."""

    def __init__(self, nvml: Nvml, time_slicer: TimeSlicer) -> None:
        self.nvml = nvml
        self.time_slicer = time_slicer

    def apply(self, record: DeviceRecord) -> DeviceRecord:
        hw = record.hardware
        match hw:
            case MigPartition():
                if hw.gpu_instance_id is None:
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
                if self.time_slicer.interval(hw.gpu_uuid) != hw.interval:
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

    def _start_mps(self, record: DeviceRecord) -> None:
        """The claim's MPS pipe directory with its limits; the GPU in EXCLUSIVE_PROCESS compute mode."""
        if record.mps is None:
            return
        pipe = Path(record.mps.pipe_directory)
        (pipe / "log").mkdir(parents=True, exist_ok=True)
        (pipe / "control.json").write_text(
            json.dumps(
                {
                    "activeThreadPercentage": record.mps.active_thread_percentage,
                    "pinnedMemoryLimits": dict(record.mps.pinned_memory_limits),
                }
            )
        )
        if not isinstance(record.hardware, MigPartition):
            settings.set_compute_mode(self.nvml, record.hardware.gpu_index, settings.EXCLUSIVE_PROCESS)

    def undo(self, record: DeviceRecord, remaining: Iterable[DeviceRecord]) -> None:
        steps = undo_steps(record, remaining)
        hw = record.hardware
        if steps.destroy_gpu_instance is not None:
            mig.destroy_partition(self.nvml, hw.gpu_index, steps.destroy_gpu_instance)
        if steps.reset_interval and self.time_slicer.interval(hw.gpu_uuid) != "Default":
            self.time_slicer.set_interval(hw.gpu_uuid, "Default")
        if steps.remove_mps and record.mps is not None:
            shutil.rmtree(record.mps.pipe_directory, ignore_errors=True)
        if steps.reset_compute_mode:
            settings.set_compute_mode(self.nvml, hw.gpu_index, settings.DEFAULT)

    def gpu_instances(self, gpu_index: int) -> list[GpuInstance]:
        return [GpuInstance(i, profile, start) for i, profile, start in mig.gpu_instances(self.nvml, gpu_index)]

    def destroy_gpu_instance(self, gpu_index: int, gpu_instance_id: int) -> bool:
        return mig.destroy_partition(self.nvml, gpu_index, gpu_instance_id)

    def interval(self, gpu_uuid: str) -> str:
        return self.time_slicer.interval(gpu_uuid)

    def set_interval(self, gpu_uuid: str, interval: str) -> None:
        self.time_slicer.set_interval(gpu_uuid, interval)
