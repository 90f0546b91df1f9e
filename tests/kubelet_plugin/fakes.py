"""``FakeHardware``: a ``GpuHardware`` in memory, for unit tests of the driver and of start-up repair.

MIG partitions are a dict ``{(gpu index, GPU instance id): GpuInstance}``; time-slice intervals a dict by GPU
UUID; compute modes a dict by GPU index (absent: DEFAULT); MPS daemons a set of pipe directories whose daemon runs
(``mps``) and one of pipe directories whose daemon died (``dead``, after ``kill_daemon``), touching no files.
``missing`` names driver tools the node lacks (``unavailable`` then refuses what needs them). Every call is
appended to ``calls`` (e.g. ``"apply gpu-0"``, ``"destroy 0/1"``). Failures on request: ``fail_apply(n)`` /
``fail_undo(n)`` make the n-th next call raise, ``lose(gpu)`` makes every call touching that GPU raise ``GpuLost``
until ``restore(gpu)``; ``reboot()``. What an undo does is decided by the same ``undo_steps`` as the NVML
implementation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pynvml

from dra_driver import errors
from kubelet_plugin.hardware import DEFAULT_MODE, EXCLUSIVE_PROCESS, GpuInstance, undo_steps
from kubelet_plugin.records import DeviceRecord, MigPartition, TimeSliceReplica
from kubelet_plugin.sharing import MPS_CONTROL, NVIDIA_SMI


class FakeHardware:
    def __init__(self) -> None:
        self.partitions: dict[tuple[int, int], GpuInstance] = {}
        self.intervals: dict[str, str] = {}  # GPU UUID -> interval; absent: "Default"
        self.mps: set[str] = set()  # pipe directories whose MPS daemon runs
        self.dead: set[str] = set()  # pipe directories whose MPS daemon died
        self.compute_modes: dict[int, int] = {}  # GPU index -> mode; absent: DEFAULT
        self.missing: set[str] = set()  # driver tools this node lacks
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
        """What a reboot does: MIG partitions, MPS daemons and GPU settings gone (the pipe directories stay),
        every GPU back (new partitions get new UUIDs)."""
        self.partitions.clear()
        self.dead |= self.mps
        self.mps.clear()
        self.intervals.clear()
        self.compute_modes.clear()
        self.lost.clear()

    def kill_daemon(self, pipe_directory: str) -> None:
        self.mps.discard(pipe_directory)
        self.dead.add(pipe_directory)

    def _check(self, op: str, gpu_index: int) -> None:
        if gpu_index in self.lost:
            raise errors.GpuLost(op, pynvml.NVML_ERROR_GPU_IS_LOST, "GPU is lost", "reset the GPU")
        if op in self._fail:
            self._fail[op] -= 1
            if self._fail[op] == 0:
                del self._fail[op]
                raise errors.NvmlError(op, pynvml.NVML_ERROR_UNKNOWN, f"injected failure of {op}")

    # --- GpuHardware ---------------------------------------------------------------------------

    def unavailable(self, record: DeviceRecord) -> str | None:
        hw = record.hardware
        if isinstance(hw, TimeSliceReplica) and hw.interval != "Default" and NVIDIA_SMI in self.missing:
            return f"device {record.device}: {hw.interval} time-slicing needs {NVIDIA_SMI}, which is missing"
        if record.mps is not None and MPS_CONTROL in self.missing:
            return f"device {record.device}: MPS sharing needs {MPS_CONTROL}, which is missing"
        return None

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
            self.start_mps(record)
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
        if steps.stop_mps and record.mps is not None:
            self.stop_mps(record.mps.pipe_directory)
        if steps.reset_compute_mode:
            self.compute_modes.pop(hw.gpu_index, None)

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

    def compute_mode(self, gpu_index: int) -> int:
        self._check("compute_mode", gpu_index)
        return self.compute_modes.get(gpu_index, DEFAULT_MODE)

    def set_compute_mode(self, gpu_index: int, mode: int) -> None:
        self.calls.append(f"compute mode {gpu_index} {mode}")
        if mode == DEFAULT_MODE:
            self.compute_modes.pop(gpu_index, None)
        else:
            self.compute_modes[gpu_index] = mode

    def mps_daemons(self) -> dict[str, int | None]:
        return {p: (1 if p in self.mps else None) for p in sorted(self.mps | self.dead)}

    def start_mps(self, record: DeviceRecord) -> bool:
        assert record.mps is not None
        pipe = record.mps.pipe_directory
        if pipe in self.mps:
            return False
        self.calls.append(f"start mps {pipe}")
        if not isinstance(record.hardware, MigPartition):
            self.compute_modes[record.hardware.gpu_index] = EXCLUSIVE_PROCESS
        self.dead.discard(pipe)
        self.mps.add(pipe)
        return True

    def stop_mps(self, pipe_directory: str) -> bool:
        self.calls.append(f"stop mps {pipe_directory}")
        running = pipe_directory in self.mps
        self.mps.discard(pipe_directory)
        self.dead.discard(pipe_directory)
        return running
