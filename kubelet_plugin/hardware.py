"""Apply and undo what a prepared device needs on the hardware: MIG partitions, time-slice intervals, MPS.

``apply`` returns the record completed with what was created (MIG ids and UUID); ``undo`` reverses one
record and resets GPU-wide settings only when no remaining user of the GPU needs them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import assert_never

from dra_driver.nvml import mig, settings
from dra_driver.nvml.session import Nvml
from kubelet_plugin.records import DeviceRecord, MigPartition, SharedGpu, TimeSliceReplica, WholeGpu
from kubelet_plugin.sharing import TimeSlicer

log = logging.getLogger(__name__)


class HardwareOps:
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
                    record = dataclasses.replace(record, hardware=hw)
            case TimeSliceReplica():
                if self.time_slicer.interval(hw.gpu_uuid) != hw.interval:
                    self.time_slicer.set_interval(hw.gpu_uuid, hw.interval)
            case WholeGpu() | SharedGpu():
                pass
            case _:
                assert_never(hw)
        if record.mps is not None:
            self._start_mps(record)
        return record

    def _start_mps(self, record: DeviceRecord) -> None:
        """The claim's MPS pipe directory with its limits; the GPU in EXCLUSIVE_PROCESS compute mode."""
        assert record.mps is not None
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
        """Reverse ``record``; ``remaining`` are the devices other claims still hold."""
        others = [r for r in remaining if r.hardware.gpu_uuid == record.hardware.gpu_uuid]
        hw = record.hardware
        if isinstance(hw, MigPartition) and hw.gpu_instance_id is not None and hw.created:
            mig.destroy_partition(self.nvml, hw.gpu_index, hw.gpu_instance_id)
        last_slicer = not any(isinstance(r.hardware, TimeSliceReplica) for r in others)
        if isinstance(hw, TimeSliceReplica) and last_slicer and self.time_slicer.interval(hw.gpu_uuid) != "Default":
            self.time_slicer.set_interval(hw.gpu_uuid, "Default")
        if record.mps is not None:
            shutil.rmtree(record.mps.pipe_directory, ignore_errors=True)
            if not isinstance(hw, MigPartition) and not any(r.mps for r in others):
                settings.set_compute_mode(self.nvml, hw.gpu_index, settings.DEFAULT)
