"""Start-up repair: make checkpoint, hardware and CDI directory agree again after any crash or reboot.

1. After a reboot (boot ID changed) the hardware side of every claim is gone: completed claims are
   prepared again (new MIG partitions at the same placements, a new CDI spec), the others dropped.
2. Claims still ``PrepareStarted`` were interrupted: undo what they recorded, drop them (the kubelet
   retries the prepare). Claims ``UnprepareStarted`` (an unprepare or roll-back cut short, or refused by
   the hardware) are undone to the end; one the hardware still refuses stays recorded for the re-scan.
3. MIG partitions on GPUs the driver partitions dynamically that no recorded claim owns are destroyed.
4. CDI specs of our kind that belong to no completed claim, and stale temporary files, are removed.
5. MPS control daemons no recorded claim uses are stopped; those of prepared claims that died are started
   (``mps_supervisor.reconcile``; while the plugin runs, ``MpsSupervisor`` keeps them running).
6. GPU-wide settings no claim holds go back to the default, as read from the GPU: a time-slice interval
   (``nvidia-smi compute-policy -l``; left alone where it cannot be read) and the EXCLUSIVE_PROCESS compute
   mode MPS needs (NVML). The plugin runs this step after registration and publication, holding each GPU's
   lock until that GPU is checked (``DeferredSettings``): a claim on a GPU waits for its check.

Every step works through the claim transaction and the ``GpuHardware`` interface.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dra_driver import errors
from kubelet_plugin.driver import GpuDriver
from kubelet_plugin.hardware import DEFAULT_MODE, EXCLUSIVE_PROCESS, HARDWARE_ERRORS
from kubelet_plugin.mps_supervisor import reconcile
from kubelet_plugin.records import ClaimRecord, DeviceRecord, MigPartition, TimeSliceReplica
from kubelet_plugin.sharing import UNKNOWN
from kubelet_plugin.transaction import UndoFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepairReport:
    reprepared: int = 0
    rolled_back: int = 0
    partitions_destroyed: int = 0
    specs_removed: int = 0
    unprepares_finished: int = 0
    mps_started: int = 0
    mps_stopped: int = 0
    settings_reset: int | None = 0  # None: checked after start-up (DeferredSettings)

    def __str__(self) -> str:
        return (
            f"re-prepared {self.reprepared} claim(s) after reboot, rolled back {self.rolled_back} interrupted "
            f"prepare(s), finished {self.unprepares_finished} interrupted unprepare(s), destroyed "
            f"{self.partitions_destroyed} unowned MIG partition(s), removed {self.specs_removed} orphan CDI spec(s), "
            f"started {self.mps_started} and stopped {self.mps_stopped} MPS control daemon(s), "
            + (
                "GPU settings checked next, in the background"
                if self.settings_reset is None
                else f"reset {self.settings_reset} GPU setting(s) no claim holds"
            )
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
    start; a files-only claim's as an orphan spec, its record being removed before the transaction writes it
    again), never a second re-prepare loop."""
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
    driver.checkpoint.remove_stale_temp_files()
    return removed


def _claimed_settings(driver: GpuDriver) -> tuple[set[str], set[int]]:
    """GPUs (by UUID) whose time-slice interval a recorded claim holds; GPUs (by index) an MPS claim holds."""
    devices = [d for r in driver.checkpoint.claims().values() for d in r.devices]
    sliced = {d.hardware.gpu_uuid for d in devices if isinstance(d.hardware, TimeSliceReplica)}
    mps = {d.hardware.gpu_index for d in devices if d.mps is not None and not isinstance(d.hardware, MigPartition)}
    return sliced, mps


def _restore_unused_settings(driver: GpuDriver, done: Callable[[int], None] = lambda _: None) -> int:
    """Time-slice intervals and compute modes that no recorded claim holds go back to the default.

    The intervals are read for all GPUs at once (one ``nvidia-smi`` per GPU, run side by side); a GPU whose
    read failed is handled, and reported, in the loop below. ``done(index)`` is called once each GPU is
    checked (also when its check failed)."""
    sliced, mps = _claimed_settings(driver)
    gpus = driver.inventory().gpus
    to_read = [g.uuid for g in gpus if g.uuid not in sliced]
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(to_read))), thread_name_prefix="repair") as pool:
        read = {uuid: pool.submit(driver.hardware.interval, uuid) for uuid in to_read}  # done when the block ends
    reset = 0
    for gpu in gpus:
        try:
            interval = UNKNOWN if gpu.uuid in sliced else read[gpu.uuid].result()
            if interval not in ("Default", UNKNOWN):
                log.warning("resetting the %s time-slice interval of GPU %d: no claim uses it", interval, gpu.index)
                driver.hardware.set_interval(gpu.uuid, "Default")
                reset += 1
            if gpu.index not in mps and driver.hardware.compute_mode(gpu.index) == EXCLUSIVE_PROCESS:
                log.warning("resetting the EXCLUSIVE_PROCESS compute mode of GPU %d: no MPS claim uses it", gpu.index)
                driver.hardware.set_compute_mode(gpu.index, DEFAULT_MODE)
                reset += 1
        except HARDWARE_ERRORS as exc:
            log.error("could not check the sharing settings of GPU %d (next start-up retries): %s", gpu.index, exc)
        finally:
            done(gpu.index)
    return reset


class DeferredSettings:
    """Step 6 (GPU-wide settings) off the start-up path: registration and publication do not wait for the
    ``nvidia-smi`` reads. Made before the plugin serves, it takes every GPU's lock at once; ``start`` checks
    the settings in a thread that lets go of each GPU's lock as soon as that GPU is checked. Until then a
    prepare, unprepare or mode change of the GPU waits for its lock, so none sees (or changes) a setting the
    check is about to reset, and the claims the check reads cannot change under it."""

    def __init__(self, driver: GpuDriver) -> None:
        self._driver = driver
        self._held: dict[int, contextlib.ExitStack] = {}
        for gpu in sorted(g.index for g in driver.inventory().gpus):  # index order, as GpuLocks.hold
            stack = contextlib.ExitStack()
            stack.enter_context(driver.locks.hold([gpu]))
            self._held[gpu] = stack
        self._thread: threading.Thread | None = None
        self._go = threading.Event()
        self._cancelled = False
        self.reset: int | None = None  # how many settings were reset, once done

    def _release(self, gpu: int) -> None:
        stack = self._held.pop(gpu, None)
        if stack is not None:
            stack.close()

    def _run(self, within_s: float) -> None:
        self._go.wait(within_s)
        try:
            if not self._cancelled:
                self.reset = _restore_unused_settings(self._driver, self._release)
                log.info("start-up repair: reset %d GPU setting(s) no claim holds", self.reset)
        except Exception:
            log.exception("start-up repair of GPU settings failed (next start-up retries)")
        finally:
            for gpu in list(self._held):
                self._release(gpu)

    def start(self, within_s: float = 0.0) -> None:
        """Check the settings once ``go`` is called, or ``within_s`` seconds from now at the latest."""
        self._thread = threading.Thread(target=self._run, args=(within_s,), name="repair-settings", daemon=True)
        self._thread.start()

    def go(self) -> None:
        self._go.set()

    def cancel(self) -> None:
        """Not checked at all (shutting down): every GPU's lock is let go."""
        self._cancelled = True
        self._go.set()

    def join(self, timeout: float) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)


def repair(driver: GpuDriver, dynamic_mig_gpus: Iterable[int], settings: bool = True) -> RepairReport:
    """Steps 1-6; without ``settings`` steps 1-5 only (the plugin runs step 6 as ``DeferredSettings``)."""
    ckpt = driver.checkpoint
    reprepared = 0
    if ckpt.boot_changed:
        for uid, record in ckpt.claims().items():
            if record.state != "PrepareCompleted":
                ckpt.remove(uid)
        reprepared = _reprepare_after_reboot(driver)
    rolled_back = _roll_back_interrupted(driver)
    finished = driver.retry_pending_unprepares()
    mps = reconcile(driver)
    report = RepairReport(
        reprepared=reprepared,
        rolled_back=rolled_back,
        partitions_destroyed=_destroy_unowned_partitions(driver, dynamic_mig_gpus),
        specs_removed=_remove_orphan_specs(driver),
        unprepares_finished=finished,
        mps_started=mps.started,
        mps_stopped=mps.stopped,
        settings_reset=_restore_unused_settings(driver) if settings else None,
    )
    log.info("start-up repair: %s", report)
    return report
