"""Start-up repair: make checkpoint, hardware and CDI directory agree again after any crash or reboot.

1. After a reboot (boot ID changed) the hardware side of every claim is gone: completed claims are
   prepared again (new MIG partitions at the same placements, a new CDI spec), interrupted ones dropped.
2. Claims still ``PrepareStarted`` were interrupted: undo what they recorded, drop them (the kubelet
   retries the prepare).
3. MIG partitions on GPUs the driver partitions dynamically that no completed claim owns are destroyed.
4. CDI specs of our kind that belong to no completed claim, and stale temporary files, are removed.
5. Time-slice intervals of GPUs no claim time-slices go back to the default.

Unprepare forgets a claim (checkpoint) before undoing it, so an unprepare cut short leaves only
unowned things behind, which steps 3-5 reclaim.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from dra_driver import cdi
from dra_driver.nvml import mig
from kubelet_plugin.driver import GpuDriver
from kubelet_plugin.records import ClaimRecord, DeviceRecord, MigPartition, TimeSliceReplica

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepairReport:
    reprepared: int = 0
    rolled_back: int = 0
    partitions_destroyed: int = 0
    specs_removed: int = 0

    def __str__(self) -> str:
        return (
            f"re-prepared {self.reprepared} claim(s) after reboot, rolled back {self.rolled_back} interrupted "
            f"prepare(s), destroyed {self.partitions_destroyed} unowned MIG partition(s), removed "
            f"{self.specs_removed} orphan CDI spec(s)"
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
    """Prepare every completed claim again. The boot is acknowledged first, so a crash half-way leaves
    ordinary interrupted prepares (rolled back at the next start), never a second re-prepare loop."""
    ckpt = driver.checkpoint
    records = [r for r in ckpt.claims().values() if r.state == "PrepareCompleted"]
    for record in records:
        ckpt.remove(record.claim.uid)
        ckpt.start(record.claim, _reset(record))
    ckpt.acknowledge_boot()
    count = 0
    for record in records:
        done: list[DeviceRecord] = []
        try:
            for device in _reset(record):
                done.append(driver.hardware.apply(device))
                ckpt.progress(record.claim.uid, (*done, *_reset(record)[len(done) :]))
            driver.write_cdi(record.claim, driver.inventory(), tuple(done))
            count += 1
        except Exception:
            log.exception(
                "could not prepare claim %s again after the reboot; dropping it (the kubelet retries)", record.claim
            )
            driver.roll_back(ckpt.get(record.claim.uid), done)
    return count


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
        if gpu.uuid not in in_use and driver.hardware.time_slicer.interval(gpu.uuid) != "Default":
            log.warning("resetting the time-slice interval of GPU %d: no claim uses it", gpu.index)
            driver.hardware.time_slicer.set_interval(gpu.uuid, "Default")


def repair(driver: GpuDriver, dynamic_mig_gpus: Iterable[int]) -> RepairReport:
    ckpt = driver.checkpoint
    reprepared = 0
    if ckpt.boot_changed:
        for uid, record in list(ckpt.claims().items()):
            if record.state != "PrepareCompleted":
                ckpt.remove(uid)
        reprepared = _reprepare_after_reboot(driver)
    rolled_back = 0
    for record in list(ckpt.claims().values()):
        if record.state == "PrepareStarted":
            driver.roll_back(record, record.devices)
            rolled_back += 1
    owned = {
        (d.hardware.gpu_index, d.hardware.gpu_instance_id)
        for r in ckpt.claims().values()
        for d in r.devices
        if isinstance(d.hardware, MigPartition)
    }
    destroyed = 0
    for gpu in dynamic_mig_gpus:
        for gi_id, profile, start in mig.gpu_instances(driver.hardware.nvml, gpu):
            if (gpu, gi_id) not in owned:
                log.warning("destroying MIG partition %s at %d on GPU %d: no claim owns it", profile, start, gpu)
                mig.destroy_partition(driver.hardware.nvml, gpu, gi_id)
                destroyed += 1
    completed = {uid for uid, r in ckpt.claims().items() if r.state == "PrepareCompleted"}
    removed = 0
    for uid, path in cdi.list_specs(driver.cdi_dir, driver.kind).items():
        if uid not in completed:
            log.warning("removing orphan CDI spec %s", path.name)
            path.unlink(missing_ok=True)
            removed += 1
    cdi.remove_stale_temp_files(driver.cdi_dir, driver.kind)
    _reset_unused_intervals(driver)
    report = RepairReport(reprepared, rolled_back, destroyed, removed)
    log.info("start-up repair: %s", report)
    return report
