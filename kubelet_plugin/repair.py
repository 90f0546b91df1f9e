"""Start-up repair: make checkpoint, hardware and CDI directory agree again after any crash or reboot.

1. After a reboot (boot ID changed) the hardware side of every claim is gone: completed claims are
   prepared again (new MIG partitions at the same placements, a new CDI spec), the others dropped.
2. Claims still ``PrepareStarted`` were interrupted: undo what they recorded, drop them (the kubelet
   retries the prepare). Claims ``UnprepareStarted`` (an unprepare or roll-back cut short, or refused by
   the hardware) are undone to the end; one the hardware still refuses stays recorded for the re-scan.
3. MIG partitions on GPUs the driver partitions dynamically that no recorded claim owns are destroyed.
4. CDI specs of our kind that belong to no completed claim, and stale temporary files, are removed.
5. Time-slice intervals of GPUs no claim time-slices go back to the default.

Every step works through the claim transaction and the ``GpuHardware`` interface.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from dra_driver import errors
from kubelet_plugin.driver import GpuDriver
from kubelet_plugin.records import ClaimRecord, DeviceRecord, MigPartition, TimeSliceReplica
from kubelet_plugin.transaction import UndoFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepairReport:
    reprepared: int = 0
    rolled_back: int = 0
    partitions_destroyed: int = 0
    specs_removed: int = 0
    unprepares_finished: int = 0

    def __str__(self) -> str:
        return (
            f"re-prepared {self.reprepared} claim(s) after reboot, rolled back {self.rolled_back} interrupted "
            f"prepare(s), finished {self.unprepares_finished} interrupted unprepare(s), destroyed "
            f"{self.partitions_destroyed} unowned MIG partition(s), removed {self.specs_removed} orphan CDI spec(s)"
        )


def _reset(record: ClaimRecord) -> tuple[DeviceRecord, ...]:
    """The claim's devices as they were planned: what was created before the reboot is gone."""
    return tuple(
        dataclasses.replace(
            d, hardware=dataclasses.replace(d.hardware, gpu_instance_id=None, compute_instance_id=None, mig_uuid=None)
        )
        if isinstance(d.hardware, MigPartition) and d.hardware.created
        else d
        for d in record.devices
    )


def _reprepare_after_reboot(driver: GpuDriver) -> int:
    """Prepare every completed claim again. The boot is acknowledged first (the claims recorded as
    ``PrepareStarted``), so a crash half-way leaves ordinary interrupted prepares (rolled back at the next
    start), never a second re-prepare loop."""
    ckpt = driver.checkpoint
    records = [r for r in ckpt.claims().values() if r.state == "PrepareCompleted"]
    for record in records:
        ckpt.remove(record.claim.uid)
        ckpt.start(record.claim, _reset(record))
    ckpt.acknowledge_boot()
    minors = {g.index: g.minor for g in driver.inventory().gpus}
    count = 0
    for record in records:
        ckpt.remove(record.claim.uid)  # nothing of it exists yet: the transaction records it again
        try:
            driver.transaction.prepare(record.claim, _reset(record), minors)
            count += 1
        except Exception:
            log.exception(
                "could not prepare claim %s again after the reboot; dropping it (the kubelet retries)", record.claim
            )
    return count


def _roll_back_interrupted(driver: GpuDriver) -> int:
    count = 0
    for uid, record in driver.checkpoint.claims().items():
        if record.state != "PrepareStarted":
            continue
        try:
            driver.transaction.undo(uid)
        except UndoFailed as exc:  # kept as UnprepareStarted, for the re-scan
            log.warning("rolling back an interrupted prepare: %s", exc)
        else:
            count += 1
    return count


def _destroy_unowned_partitions(driver: GpuDriver, gpus: Iterable[int]) -> int:
    owned = {
        (d.hardware.gpu_index, d.hardware.gpu_instance_id)
        for r in driver.checkpoint.claims().values()  # every state: a pending undo still owns its partitions
        for d in r.devices
        if isinstance(d.hardware, MigPartition)
    }
    destroyed = 0
    for gpu in gpus:
        try:
            for gi in driver.hardware.gpu_instances(gpu):
                if (gpu, gi.id) not in owned:
                    log.warning(
                        "destroying MIG partition %s at %d on GPU %d: no claim owns it", gi.profile, gi.start, gpu
                    )
                    driver.hardware.destroy_gpu_instance(gpu, gi.id)
                    destroyed += 1
        except errors.DriverError as exc:
            log.error("could not check GPU %d for unowned MIG partitions (next start-up retries): %s", gpu, exc)
    return destroyed


def _remove_orphan_specs(driver: GpuDriver) -> int:
    completed = {uid for uid, r in driver.checkpoint.claims().items() if r.state == "PrepareCompleted"}
    removed = 0
    for uid, path in driver.specs.listed().items():
        if uid not in completed:
            log.warning("removing orphan CDI spec %s", path.name)
            path.unlink(missing_ok=True)
            removed += 1
    driver.specs.remove_stale_temp_files()
    return removed


def _reset_unused_intervals(driver: GpuDriver) -> None:
    """A GPU whose last time-sliced claim went away mid-unprepare goes back to the default interval."""
    in_use = {
        d.hardware.gpu_uuid
        for r in driver.checkpoint.claims().values()
        for d in r.devices
        if isinstance(d.hardware, TimeSliceReplica)
    }
    for gpu in driver.inventory().gpus:
        # "unknown": nvidia-smi cannot report it, so reset it whenever no claim time-slices the GPU
        if gpu.uuid not in in_use and driver.hardware.interval(gpu.uuid) != "Default":
            log.warning("resetting the time-slice interval of GPU %d: no claim uses it", gpu.index)
            driver.hardware.set_interval(gpu.uuid, "Default")


def repair(driver: GpuDriver, dynamic_mig_gpus: Iterable[int]) -> RepairReport:
    ckpt = driver.checkpoint
    reprepared = 0
    if ckpt.boot_changed:
        for uid, record in ckpt.claims().items():
            if record.state != "PrepareCompleted":
                ckpt.remove(uid)
        reprepared = _reprepare_after_reboot(driver)
    rolled_back = _roll_back_interrupted(driver)
    finished = driver.retry_pending_unprepares()
    _reset_unused_intervals(driver)
    report = RepairReport(
        reprepared=reprepared,
        rolled_back=rolled_back,
        partitions_destroyed=_destroy_unowned_partitions(driver, dynamic_mig_gpus),
        specs_removed=_remove_orphan_specs(driver),
        unprepares_finished=finished,
    )
    log.info("start-up repair: %s", report)
    return report
