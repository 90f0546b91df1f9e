"""One claim transaction: prepare a claim's devices all or nothing, and undo a claim, crash-safe.

``prepare``: ``checkpoint.start`` -> per device ``hardware.apply`` + ``checkpoint.progress`` (where the
device's record changed: a MIG partition's IDs) -> CDI spec + ``checkpoint.complete``. A claim whose devices
touch no GPU (``hardware.files_only``: a whole GPU, a share without MPS, a MIG device that existed before) has
one step: CDI spec + ``checkpoint.prepared`` (nothing to record before its only side effect, the spec, which
repair removes if no record follows). Only ``complete``, ``prepared`` and ``remove`` are durable writes; the
records of work in flight are volatile (``checkpoint``), and so is the CDI spec, which start-up repair rewrites
after a reboot: one fsync per prepare and per unprepare (docs/kubelet-plugin.md, "Durable writes"). On any
failure it rolls back exactly the devices applied (reverse order), removes the CDI spec and the checkpoint
record (through ``undo``: a roll-back the hardware refuses stays recorded), and re-raises the failure.

``undo`` (unprepare, roll-back, start-up repair): ``checkpoint.start_unprepare`` -> CDI spec removed -> per
device, in reverse, ``hardware.undo`` + ``checkpoint.unprepare_progress`` -> ``checkpoint.remove``. When the
hardware refuses, ``UndoFailed`` says which GPU and what; the record stays ``UnprepareStarted`` with the
devices still to undo, so the next attempt finishes the job and never undoes a device twice (a GPU
instance id, once destroyed, may be given to another claim). The caller holds the claim's and its GPUs'
locks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import assert_never

from dra_driver import errors
from dra_driver.kubeletplugin.protocol import ClaimRef
from kubelet_plugin.checkpoint import Checkpoint
from kubelet_plugin.hardware import HARDWARE_ERRORS, GpuHardware, files_only
from kubelet_plugin.records import DeviceRecord, MigPartition, SharedGpu, TimeSliceReplica, WholeGpu
from kubelet_plugin.spec_files import SpecFiles

log = logging.getLogger(__name__)


def _action(device: DeviceRecord) -> str:
    """What undoing ``device`` does to its GPU, for messages."""
    hw = device.hardware
    match hw:
        case MigPartition() if hw.created and hw.gpu_instance_id is not None:
            return f"destroying MIG partition {hw.profile} at slice {hw.placement_start} (GPU instance {hw.gpu_instance_id})"
        case TimeSliceReplica():
            return f"resetting the time-slice interval (device {device.device})"
        case MigPartition() | WholeGpu() | SharedGpu():
            return f"releasing device {device.device}" + (" (MPS settings)" if device.mps else "")
        case _:
            assert_never(hw)


_KEPT = "the claim stays in the checkpoint; will retry at the next unprepare and hardware re-scan"


class UndoFailed(errors.RecoverableError):
    """Undoing a claim failed part-way; its checkpoint record is kept and the undo is retried."""


def _device_failed(claim: ClaimRef, device: DeviceRecord, cause: Exception) -> UndoFailed:
    verb = "did not answer" if isinstance(cause, errors.GpuLost) else "failed"
    return UndoFailed(
        f"GPU {device.hardware.gpu_index} {verb} while {_action(device)} of claim {claim.namespace}/{claim.name} "
        f"({cause}); {_KEPT}"
    )


@dataclass(frozen=True)
class ClaimTransaction:
    checkpoint: Checkpoint
    hardware: GpuHardware
    specs: SpecFiles

    def prepare(
        self, claim: ClaimRef, planned: tuple[DeviceRecord, ...], gpu_minors: Mapping[int, int]
    ) -> tuple[DeviceRecord, ...]:
        """Prepare ``planned`` for a claim not in the checkpoint; returns the devices with their CDI device IDs.

        ``gpu_minors`` maps GPU index -> minor number (for the CDI spec's device nodes)."""
        if all(files_only(d) for d in planned):
            return self._prepare_files(claim, planned, gpu_minors)
        self.checkpoint.start(claim, planned)
        done: list[DeviceRecord] = []
        try:
            for device in planned:
                applied = self.hardware.apply(device)
                done.append(applied)
                if applied != device:  # something was created: record it (an unchanged record says nothing new)
                    self.checkpoint.progress(claim.uid, (*done, *planned[len(done) :]))
            completed, filename = self.specs.write(claim.uid, tuple(done), gpu_minors)
            self.checkpoint.complete(claim.uid, completed, filename)
        except BaseException as exc:
            self._roll_back(claim, tuple(done), exc)
            raise
        return completed

    def _prepare_files(
        self, claim: ClaimRef, planned: tuple[DeviceRecord, ...], gpu_minors: Mapping[int, int]
    ) -> tuple[DeviceRecord, ...]:
        """A claim whose devices touch no GPU (``files_only``): its CDI spec, then its record, completed at once.
        The spec is its only side effect, so nothing is recorded before it: a spec that a killed plugin leaves
        without a record is an orphan, which start-up repair removes (the kubelet retries the prepare)."""
        recorded = self.checkpoint.get(claim.uid)
        if recorded is not None:  # refused before anything is touched, as ``start`` refuses
            raise ValueError(f"claim {claim} is already {recorded.state}")
        applied = tuple(self.hardware.apply(d) for d in planned)  # touch no GPU: nothing to undo if one fails
        try:
            completed, filename = self.specs.write(claim.uid, applied, gpu_minors)
            self.checkpoint.prepared(claim, completed, filename)
        except BaseException as exc:
            self._forget_files(claim, exc)
            raise
        return completed

    def _forget_files(self, claim: ClaimRef, cause: BaseException) -> None:
        """Roll back a files-only prepare: its CDI spec, and a record whose write failed after it reached the file
        (an fsync refused): the checkpoint as memory holds it, without the claim, written again over it."""
        for step, undo in (
            ("removing its CDI spec", lambda: self.specs.remove(claim.uid)),
            ("rewriting the checkpoint", self.checkpoint.save),
        ):
            try:
                undo()
            except OSError as failed:  # the disk refused twice: logged; an orphan spec goes at the next start-up
                log.error("rolling back the failed prepare of claim %s: %s: %s", claim, step, failed)
                cause.add_note(f"rolling back: {step} failed ({failed})")

    def _roll_back(self, claim: ClaimRef, done: tuple[DeviceRecord, ...], cause: BaseException) -> None:
        self.checkpoint.start_unprepare(claim.uid, done)
        try:
            self.undo(claim.uid)
        except UndoFailed as failed:  # kept as UnprepareStarted: retried by the next prepare, re-scan or start-up
            log.error("rolling back the failed prepare of claim %s: %s", claim, failed)
            cause.add_note(f"rolling back: {failed}")

    def undo(self, uid: str) -> bool:
        """Undo everything recorded for the claim and forget it; False when nothing was recorded.

        Raises ``UndoFailed`` (record kept) when the hardware refuses."""
        record = self.checkpoint.get(uid)
        if record is None:
            return False
        if record.state != "UnprepareStarted":
            self.checkpoint.start_unprepare(uid, record.devices)
        try:
            self.specs.remove(uid)
        except OSError as exc:
            raise UndoFailed(f"removing the CDI spec of claim {record.claim} failed ({exc}); {_KEPT}") from exc
        left = list(record.devices)
        while left:
            others = [d for u, r in self.checkpoint.claims().items() if u != uid for d in r.devices]
            try:
                self.hardware.undo(left[-1], others)
            except HARDWARE_ERRORS as exc:
                raise _device_failed(record.claim, left[-1], exc) from exc
            left.pop()
            if left:
                self.checkpoint.unprepare_progress(uid, tuple(left))
        self.checkpoint.remove(uid)
        return True
