"""Prepare and unprepare claims: plan, then one claim transaction under the claim's and its GPUs' locks.

A call with one claim (the kubelet's usual call) is worked on in the calling gRPC thread when nothing in it can
take long: its budget leaves room for the claim read at its slowest (``claim_read_s``), its locks are free, and
its devices need no hardware work (``hardware.files_only``: a whole GPU or a share without MPS, a MIG device
that existed before). That saves the hand-off to the claim pool and back, two thread wake-ups (~0.25 ms of a
~8 ms prepare, measured in bench_prepare). Everything else goes to the claim pool, so that the call is answered
within its budget however long the work takes.

Idempotent and crash-only: a completed claim is answered from the checkpoint; a failure rolls back
everything this attempt did (``transaction.ClaimTransaction``) before the error goes to the kubelet. An
undo the hardware refused stays recorded and is retried by the next prepare or unprepare of the claim
and by ``retry_pending_unprepares`` (start-up repair, the plugin's re-scan). ``per_claim_error`` is the
one place exceptions become the per-claim error string.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import api.errors
from dra_driver import errors
from dra_driver.cdi import ContainerEdits
from dra_driver.inventory import Inventory
from dra_driver.k8s import ApiError
from dra_driver.kubeletplugin.protocol import ANSWER_WITHIN_S, ClaimRef, PreparedDevice, PrepareResult
from kubelet_plugin.checkpoint import Checkpoint
from kubelet_plugin.claim_status import ClaimApi, claim_path, write_device_status
from kubelet_plugin.hardware import GpuHardware, files_only
from kubelet_plugin.locks import Busy, GpuLocks
from kubelet_plugin.logs import ClaimLogger
from kubelet_plugin.metrics import PluginMetrics
from kubelet_plugin.plan import ClaimRejected, Context, check_available, check_beside, plan_claim
from kubelet_plugin.records import DeviceRecord
from kubelet_plugin.spec_files import SpecFiles
from kubelet_plugin.transaction import ClaimTransaction, UndoFailed

if TYPE_CHECKING:
    from dra_driver.kubeletplugin.server import Answered

log = logging.getLogger(__name__)
T = TypeVar("T")
HERE_MARGIN_S = 2.0  # worked on in the calling thread only with this much budget left beyond the claim read


def per_claim_error(exc: BaseException) -> str:
    """What the kubelet (and the pod's events) say when preparing or unpreparing a claim fails."""
    if isinstance(exc, ClaimRejected):
        return str(exc)
    if isinstance(exc, api.errors.ConfigError):
        return f"invalid configuration: {exc}"
    if isinstance(exc, errors.InsufficientResources):
        return f"{exc}; the scheduler will retry once the GPU's allocations are settled"
    if isinstance(exc, errors.DriverError | ApiError):
        return str(exc)
    return f"internal error ({type(exc).__name__}: {exc}); see the plugin's log"


def _gpus(devices: Iterable[DeviceRecord]) -> set[int]:
    return {d.hardware.gpu_index for d in devices}


class _Elsewhere(Exception):
    """Working on this claim in the calling thread could outlast the call's budget (a lock another call holds,
    hardware work, an earlier attempt to undo first): the claim pool does it. ``claim``: what was read of it."""

    def __init__(self, claim: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.claim = claim


class GpuDriver:
    def __init__(
        self,
        driver: str,
        node: str,
        kube: ClaimApi,
        checkpoint: Checkpoint,
        hardware: GpuHardware,
        inventory: Callable[[], Inventory],
        cdi_dir: Path,
        mps_root: Path,
        mig_minors: dict[str, int],
        driver_edits: ContainerEdits,
        dynamic_mig: bool = True,
        answer_within_s: float = ANSWER_WITHIN_S,
        metrics: PluginMetrics | None = None,
        device_status: bool = True,
        claim_read_s: float = 20.0,
    ) -> None:
        self.driver = driver
        self.node = node
        self.kube = kube
        self.checkpoint = checkpoint
        self.hardware = hardware
        self.inventory = inventory
        self.mps_root = mps_root
        self.dynamic_mig = dynamic_mig
        self.answer_within_s = answer_within_s
        self.device_status = device_status  # write status.devices after each prepare (claim_status.py)
        self.claim_read_s = claim_read_s  # the longest a claim read can take (the API timeouts' sum)
        self.specs = SpecFiles(driver, cdi_dir, mig_minors, driver_edits)
        self.transaction = ClaimTransaction(checkpoint, hardware, self.specs)
        self.locks = GpuLocks()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="claim")
        self._status_writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="claim-status")
        self.metrics = metrics if metrics is not None else PluginMetrics()
        self.metrics.watch_claims(checkpoint.claims)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        self._status_writer.shutdown(wait=True)

    # --- the gRPC-facing API -------------------------------------------------------------------

    def prepare(
        self, claims: list[ClaimRef], within_s: float | None = None, answered: Answered | None = None
    ) -> dict[str, PrepareResult]:
        """Every claim's result, or, for a claim still being prepared after ``within_s`` (default
        ``answer_within_s``), an error saying so: the work goes on, and the kubelet's retry is answered from the
        checkpoint once it is done. The claims' ``status.devices`` writes start once ``answered`` is set (the
        answer has gone out), so that they do not compete with it; at once without ``answered``."""
        budget = self.answer_within_s if within_s is None else within_s
        started = time.monotonic()
        read: dict[str, Any] | None = None
        if len(claims) == 1 and self._fits(budget):  # here unless it could take long (the module's docstring)
            try:
                return {claims[0].uid: self._prepare_reported(claims[0], answered, here=True)}
            except _Elsewhere as elsewhere:
                read = elsewhere.claim
        futures = {c.uid: self._pool.submit(self._prepare_reported, c, answered, read=read) for c in claims}
        late = PrepareResult(error=self._late("prepared", budget))
        return self._answers(futures, late, budget - (time.monotonic() - started))  # less what was spent here

    def unprepare(self, claims: list[ClaimRef], within_s: float | None = None) -> dict[str, str]:
        budget = self.answer_within_s if within_s is None else within_s
        started = time.monotonic()
        if len(claims) == 1 and self._fits(budget):
            with contextlib.suppress(_Elsewhere):
                return {claims[0].uid: self._unprepare_reported(claims[0], here=True)}
        futures = {c.uid: self._pool.submit(self._unprepare_reported, c) for c in claims}
        return self._answers(futures, self._late("unprepared", budget), budget - (time.monotonic() - started))

    def _fits(self, budget: float) -> bool:
        """Can a claim be worked on in the calling thread within ``budget``: its read at its slowest, then files?"""
        return budget >= self.claim_read_s + HERE_MARGIN_S

    @staticmethod
    def _late(done: str, budget: float) -> str:
        return (
            f"not {done} within {budget:.0f}s (the API server or the GPU is slow to answer); "
            "still in progress: the kubelet's retry gets the result"
        )

    @staticmethod
    def _answers(futures: dict[str, Future[T]], late: T, budget: float) -> dict[str, T]:
        """Results of ``futures`` that finish within ``budget`` seconds; ``late`` for the others."""
        finished, _ = wait(futures.values(), timeout=budget)
        return {uid: f.result() if f in finished else late for uid, f in futures.items()}

    def _prepare_reported(
        self,
        ref: ClaimRef,
        answered: Answered | None = None,
        here: bool = False,
        read: dict[str, Any] | None = None,
    ) -> PrepareResult:
        clog = ClaimLogger(log, ref)
        started = time.monotonic()
        try:
            devices = self.prepare_claim(ref, clog, answered, here, read)
        except _Elsewhere:
            raise
        except Exception as exc:
            self.metrics.observe_prepare(time.monotonic() - started, exc)
            message = per_claim_error(exc)
            expected = isinstance(exc, ClaimRejected | ApiError | UndoFailed)
            clog.error("prepare failed: %s", message, exc_info=not expected)
            return PrepareResult(error=message)
        self.metrics.observe_prepare(time.monotonic() - started)
        names = ", ".join(d.device for d in devices)
        logged = functools.partial(clog.info, "prepared %d device(s): %s", len(devices), names)
        if answered is None:
            logged()
        else:
            answered.then(logged)  # written once the answer is out: off the answer's path
        return PrepareResult(devices=devices)

    def _unprepare_reported(self, ref: ClaimRef, here: bool = False) -> str:
        clog = ClaimLogger(log, ref)
        started = time.monotonic()
        try:
            self._undo(ref.uid, here=here)
        except _Elsewhere:
            raise
        except Exception as exc:
            self.metrics.observe_unprepare(time.monotonic() - started, exc)
            message = per_claim_error(exc)
            clog.error("unprepare failed: %s", message, exc_info=not isinstance(exc, UndoFailed))
            return message
        self.metrics.observe_unprepare(time.monotonic() - started)
        clog.info("unprepared")
        return ""

    # --- prepare -------------------------------------------------------------------------------

    def prepare_claim(
        self,
        ref: ClaimRef,
        clog: logging.LoggerAdapter[logging.Logger],
        answered: Answered | None = None,
        here: bool = False,
        read: dict[str, Any] | None = None,
    ) -> tuple[PreparedDevice, ...]:
        """``here``: ``_Elsewhere`` instead of waiting for a lock or doing hardware work; ``read``: the claim as
        just read (by such an attempt), else it is read now."""
        try:
            with self.locks.claim(ref.uid, wait=not here):  # one prepare/unprepare of a claim at a time
                return self._prepare_claim(ref, clog, answered, here, read)
        except Busy as exc:  # only with here
            raise _Elsewhere(read) from exc

    def _prepare_claim(
        self,
        ref: ClaimRef,
        clog: logging.LoggerAdapter[logging.Logger],
        answered: Answered | None,
        here: bool,
        read: dict[str, Any] | None,
    ) -> tuple[PreparedDevice, ...]:
        record = self.checkpoint.get(ref.uid)
        if record is not None and record.state == "PrepareCompleted":
            clog.info("already prepared: answering from the checkpoint")
            return tuple(d.to_kubelet() for d in record.devices)
        if record is not None:  # an earlier attempt died half-way, or its undo did not finish: undo it first
            if here:
                raise _Elsewhere(read)
            clog.info("undoing what an earlier attempt left (%s) first", record.state)
            with self.locks.hold(_gpus(record.devices)):
                self.transaction.undo(ref.uid)
        claim = read if read is not None else self.kube.get(claim_path(ref))
        if claim is None:
            raise ClaimRejected(f"claim {ref.namespace}/{ref.name} not found: it was deleted")
        ctx = Context(self.driver, self.node, self.inventory(), str(self.mps_root), self.dynamic_mig)
        planned = plan_claim(ctx, ref, claim, [])  # validate everything before taking locks
        check_available(planned, self.hardware.unavailable)  # a missing driver tool: refused, nothing touched
        if here and not all(files_only(d) for d in planned):
            raise _Elsewhere(claim)
        with self.locks.hold(_gpus(planned), wait=not here):
            others = [r for uid, r in self.checkpoint.claims().items() if uid != ref.uid]
            check_beside(ref, planned, others)
            minors = {g.index: g.minor for g in ctx.inventory.gpus}
            completed = self.transaction.prepare(ref, planned, minors)
        if self.device_status:
            write = functools.partial(self._submit_status, ref, completed, clog, claim)
            if answered is None:
                write()
            else:
                answered.then(write)  # started once the answer is out: no thread wakes before it
        return tuple(d.to_kubelet() for d in completed)

    def _submit_status(self, *args: Any) -> None:
        """``_write_status(*args)`` in the status writers' pool (unless the driver is shutting down)."""
        try:
            self._status_writer.submit(self._write_status, *args)
        except RuntimeError:  # the pool is shut down: the status is best effort
            log.info("not recording device status: the plugin is stopping")

    def _write_status(
        self,
        ref: ClaimRef,
        devices: tuple[DeviceRecord, ...],
        clog: logging.LoggerAdapter[logging.Logger],
        read: dict[str, Any],
    ) -> None:
        """Best effort: the claim's ``status.devices``, unless it was unprepared (or prepared again) before the
        write's turn came: its devices are gone then, and a newer prepare writes its own."""
        record = self.checkpoint.get(ref.uid)
        if record is None or record.state != "PrepareCompleted" or record.devices != devices:
            clog.info("not recording device status: the claim was unprepared meanwhile")
            return
        write_device_status(self.kube, self.driver, ref, devices, clog, read)

    # --- unprepare -----------------------------------------------------------------------------

    def _undo(self, uid: str, only_pending: bool = False, here: bool = False) -> bool:
        """Under the claim's and its GPUs' locks, undo what the checkpoint records for it; False when there is
        nothing (or, ``only_pending``, no unfinished undo) to do. ``here``: ``_Elsewhere`` instead of waiting for
        a lock or doing hardware work."""
        try:
            with self.locks.claim(uid, wait=not here):
                record = self.checkpoint.get(uid)
                if record is None or (only_pending and record.state != "UnprepareStarted"):
                    return False  # unknown, already unprepared, or finished (or prepared again) meanwhile
                if here and (record.state != "PrepareCompleted" or not all(files_only(d) for d in record.devices)):
                    raise _Elsewhere
                with self.locks.hold(_gpus(record.devices), wait=not here):
                    return self.transaction.undo(uid)
        except Busy as exc:  # only with here
            raise _Elsewhere from exc

    def retry_pending_unprepares(self) -> int:
        """Retry every undo that did not finish (``UnprepareStarted``: e.g. a GPU did not answer).

        Returns how many finished; one that fails again stays recorded, with a warning in the log."""
        finished = 0
        for uid, record in self.checkpoint.claims().items():
            if record.state != "UnprepareStarted":
                continue
            clog = ClaimLogger(log, record.claim)
            try:
                if self._undo(uid, only_pending=True):
                    clog.info("finished the pending unprepare")
                    finished += 1
            except UndoFailed as exc:
                clog.warning("pending unprepare: %s", exc)
        return finished
