"""``FakeHardware``: a ``GpuHardware`` in memory, for unit tests of the driver and of start-up repair.

MIG partitions are a dict ``{(gpu index, GPU instance id): GpuInstance}``; time-slice intervals a dict by GPU
UUID; MPS is recorded but touches no files. Every call is appended to ``calls`` (e.g. ``"apply gpu-0"``,
``"destroy 0/1"``). Failures on request: ``fail_apply(n)`` / ``fail_undo(n)`` make the n-th next call raise,
``lose(gpu)`` makes every call touching that GPU raise ``GpuLost`` until ``restore(gpu)``; ``reboot()``. What an undo does
is decided by the same ``undo_steps`` as the NVML implementation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pynvml

from dra_driver import errors
from kubelet_plugin.hardware import GpuInstance, undo_steps
from kubelet_plugin.records import DeviceRecord, MigPartition, TimeSliceReplica


class FakeHardware:
    def __init__(self) -> None:
        self.partitions: dict[tuple[int, int], GpuInstance] = {}
        self.intervals: dict[str, str] = {}  # GPU UUID -> interval; absent: "Default"
        self.mps: set[str] = set()  # pipe directories of devices with MPS applied
        self.calls: list[str] = []
        self.lost: set[int] = set()
        self._fail: dict[str, int] = {}  # "apply" | "undo" -> calls to go before one fails
        self._generation = 0

    # --- fault injection -----------------------------------------------------------------------

    def fail_apply(self, nth: int = 1) -> None:
        """The ``nth`` next ``apply`` raises an NVML error (and changes nothing)."""
        self._fail["apply"] = nth

    def fail_undo(self, nth: int = 1) -> None:
        """The ``nth`` next ``undo`` raises an NVML error (and changes nothing)."""
        self._fail["undo"] = nth

    def lose(self, gpu_index: int) -> None:
        self.lost.add(gpu_index)

    def restore(self, gpu_index: int) -> None:
        self.lost.discard(gpu_index)

    def reboot(self) -> None:
        """What a reboot does: MIG partitions and MPS gone, every GPU back (new partitions get new UUIDs)."""
        self.partitions.clear()
        self.mps.clear()
        self.lost.clear()

    def _check(self, op: str, gpu_index: int) -> None:
        if gpu_index in self.lost:
            raise errors.GpuLost(op, pynvml.NVML_ERROR_GPU_IS_LOST, "GPU is lost", "reset the GPU")
        if op in self._fail:
            self._fail[op] -= 1
            if self._fail[op] == 0:
                del self._fail[op]
                raise errors.NvmlError(op, pynvml.NVML_ERROR_UNKNOWN, f"injected failure of {op}")

    # --- GpuHardware ---------------------------------------------------------------------------

    def apply(self, record: DeviceRecord) -> DeviceRecord:
        hw = record.hardware
        self.calls.append(f"apply {record.device}")
        self._check("apply", hw.gpu_index)
        if isinstance(hw, MigPartition) and hw.gpu_instance_id is None:
            taken = {gi for gpu, gi in self.partitions if gpu == hw.gpu_index}
            if any(p.start == hw.placement_start for (gpu, _), p in self.partitions.items() if gpu == hw.gpu_index):
                raise errors.InsufficientResources(
                    "apply", pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES, f"placement {hw.placement_start} is busy"
                )
            gi = min(set(range(1, 64)) - taken)
            self._generation += 1
            self.partitions[(hw.gpu_index, gi)] = GpuInstance(gi, hw.profile, hw.placement_start)
            uuid = f"MIG-fake-{hw.gpu_index}-{gi}-{self._generation}"
            record = dataclasses.replace(
                record, hardware=dataclasses.replace(hw, gpu_instance_id=gi, compute_instance_id=0, mig_uuid=uuid)
            )
        if isinstance(hw, TimeSliceReplica):
            self.set_interval(hw.gpu_uuid, hw.interval)
        if record.mps is not None:
            self.mps.add(record.mps.pipe_directory)
        return record

    def undo(self, record: DeviceRecord, remaining: Iterable[DeviceRecord]) -> None:
        hw = record.hardware
        self.calls.append(f"undo {record.device}")
        self._check("undo", hw.gpu_index)
        steps = undo_steps(record, remaining)
        if steps.destroy_gpu_instance is not None:
            self.partitions.pop((hw.gpu_index, steps.destroy_gpu_instance), None)
        if steps.reset_interval:
            self.intervals.pop(hw.gpu_uuid, None)
        if steps.remove_mps and record.mps is not None:
            self.mps.discard(record.mps.pipe_directory)

    def gpu_instances(self, gpu_index: int) -> list[GpuInstance]:
        self._check("gpu_instances", gpu_index)
        return [p for (gpu, _), p in sorted(self.partitions.items()) if gpu == gpu_index]

    def destroy_gpu_instance(self, gpu_index: int, gpu_instance_id: int) -> bool:
        self.calls.append(f"destroy {gpu_index}/{gpu_instance_id}")
        self._check("destroy", gpu_index)
        return self.partitions.pop((gpu_index, gpu_instance_id), None) is not None

    def interval(self, gpu_uuid: str) -> str:
        return self.intervals.get(gpu_uuid, "Default")

    def set_interval(self, gpu_uuid: str, interval: str) -> None:
        self.calls.append(f"interval {gpu_uuid} {interval}")
        if interval == "Default":
            self.intervals.pop(gpu_uuid, None)
        else:
            self.intervals[gpu_uuid] = interval
