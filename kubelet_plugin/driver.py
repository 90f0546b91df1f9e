"""Prepare and unprepare claims: plan, checkpoint (two phases), apply under per-GPU locks, CDI spec.

Idempotent and crash-only: a completed claim is answered from the checkpoint; a failure rolls back
everything this attempt did (MIG partitions, sharing settings, the CDI spec, the checkpoint entry)
before the error goes to the kubelet. ``per_claim_error`` is the one place exceptions become the
per-claim error string.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import api.errors
from dra_driver import cdi, errors
from dra_driver.inventory import Inventory
from dra_driver.k8s import ApiError, Kube
from dra_driver.kubeletplugin.protocol import ClaimRef, PreparedDevice, PrepareResult
from kubelet_plugin.cdi_specs import claim_kind, claim_spec, device_uuid
from kubelet_plugin.checkpoint import Checkpoint
from kubelet_plugin.hardware import HardwareOps
from kubelet_plugin.locks import GpuLocks
from kubelet_plugin.logs import ClaimLogger
from kubelet_plugin.plan import ClaimRejected, Context, plan_claim
from kubelet_plugin.records import ClaimRecord, DeviceRecord

log = logging.getLogger(__name__)


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


class GpuDriver:
    def __init__(
        self,
        driver: str,
        node: str,
        kube: Kube,
        checkpoint: Checkpoint,
        hardware: HardwareOps,
        inventory: Callable[[], Inventory],
        cdi_dir: Path,
        mps_root: Path,
        mig_minors: dict[str, int],
        dynamic_mig: bool = True,
    ) -> None:
        self.driver = driver
        self.node = node
        self.kube = kube
        self.checkpoint = checkpoint
        self.hardware = hardware
        self.inventory = inventory
        self.cdi_dir = cdi_dir
        self.mps_root = mps_root
        self.mig_minors = mig_minors
        self.dynamic_mig = dynamic_mig
        self.locks = GpuLocks()
        self.kind = claim_kind(driver)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="claim")
        self._status_writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="claim-status")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        self._status_writer.shutdown(wait=True)

    # --- the gRPC-facing API -------------------------------------------------------------------

    def prepare(self, claims: list[ClaimRef]) -> dict[str, PrepareResult]:
        futures = {c.uid: self._pool.submit(self._prepare_reported, c) for c in claims}
        return {uid: f.result() for uid, f in futures.items()}

    def unprepare(self, claims: list[ClaimRef]) -> dict[str, str]:
        futures = {c.uid: self._pool.submit(self._unprepare_reported, c) for c in claims}
        return {uid: f.result() for uid, f in futures.items()}

    def _prepare_reported(self, ref: ClaimRef) -> PrepareResult:
        clog = ClaimLogger(log, ref)
        try:
            devices = self.prepare_claim(ref, clog)
        except Exception as exc:
            message = per_claim_error(exc)
            clog.error("prepare failed: %s", message, exc_info=not isinstance(exc, ClaimRejected | ApiError))
            return PrepareResult(error=message)
        clog.info("prepared %d device(s): %s", len(devices), ", ".join(d.device for d in devices))
        return PrepareResult(devices=devices)

    def _unprepare_reported(self, ref: ClaimRef) -> str:
        clog = ClaimLogger(log, ref)
        try:
            self.unprepare_claim(ref.uid)
        except Exception as exc:
            message = per_claim_error(exc)
            clog.error("unprepare failed: %s", message, exc_info=True)
            return message
        clog.info("unprepared")
        return ""

    # --- prepare -------------------------------------------------------------------------------

    def prepare_claim(self, ref: ClaimRef, clog: logging.LoggerAdapter[logging.Logger]) -> tuple[PreparedDevice, ...]:
        with self.locks.claim(ref.uid):  # one prepare/unprepare of a claim at a time (kubelet retries overlap)
            return self._prepare_claim(ref, clog)

    def _prepare_claim(self, ref: ClaimRef, clog: logging.LoggerAdapter[logging.Logger]) -> tuple[PreparedDevice, ...]:
        record = self.checkpoint.get(ref.uid)
        if record is not None and record.state == "PrepareCompleted":
            clog.info("already prepared: answering from the checkpoint")
            return tuple(d.to_kubelet() for d in record.devices)
        if record is not None:  # an earlier attempt of this process died half-way: undo it first
            self.roll_back(record, record.devices)
        claim = self.kube.get(f"/apis/resource.k8s.io/v1/namespaces/{ref.namespace}/resourceclaims/{ref.name}")
        if claim is None:
            raise ClaimRejected(f"claim {ref.namespace}/{ref.name} not found: it was deleted")
        ctx = Context(self.driver, self.node, self.inventory(), str(self.mps_root), self.dynamic_mig)
        planned = plan_claim(ctx, ref, claim, [])  # validate everything before taking locks
        with self.locks.hold({d.hardware.gpu_index for d in planned}):
            others = [r for uid, r in self.checkpoint.claims().items() if uid != ref.uid]
            planned = plan_claim(ctx, ref, claim, others)
            self.checkpoint.start(ref, planned)
            done: list[DeviceRecord] = []
            try:
                for device in planned:
                    done.append(self.hardware.apply(device))
                    self.checkpoint.progress(ref.uid, (*done, *planned[len(done) :]))
                completed = self.write_cdi(ref, ctx.inventory, tuple(done))
            except BaseException:
                self.roll_back(self.checkpoint.get(ref.uid), done)
                raise
        self._status_writer.submit(self._report_status, ref, completed, clog)  # best effort, off the kubelet's path
        return tuple(d.to_kubelet() for d in completed)

    def write_cdi(self, ref: ClaimRef, inv: Inventory, done: tuple[DeviceRecord, ...]) -> tuple[DeviceRecord, ...]:
        if not done:
            self.checkpoint.complete(ref.uid, (), None)
            return ()
        minors = {g.index: g.minor for g in inv.gpus}
        spec = claim_spec(self.driver, ref.uid, done, minors, self.mig_minors)
        ids = spec.device_ids()
        completed = tuple(replace(d, cdi_device_ids=(ids[i],)) for i, d in enumerate(done))
        filename = cdi.spec_file_name(self.kind, ref.uid)
        cdi.write_spec(self.cdi_dir, spec, filename)
        self.checkpoint.complete(ref.uid, completed, filename)
        return completed

    def roll_back(self, record: ClaimRecord | None, done: list[DeviceRecord] | tuple[DeviceRecord, ...]) -> None:
        """Undo ``done`` (in reverse), remove the claim's CDI spec and checkpoint entry."""
        uid = record.claim.uid if record is not None else None
        remaining = [d for u, r in self.checkpoint.claims().items() if u != uid for d in r.devices]
        for device in reversed(list(done)):
            self.hardware.undo(device, remaining)
        if uid is not None:
            cdi.remove_spec(self.cdi_dir, cdi.spec_file_name(self.kind, uid))
            if self.checkpoint.get(uid) is not None:
                self.checkpoint.remove(uid)

    def _report_status(
        self,
        ref: ClaimRef,
        devices: tuple[DeviceRecord, ...],
        clog: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        """Publish the device UUIDs in ``status.devices`` (read-modify-write; other drivers' entries kept)."""
        if not devices:
            return
        ours = [
            {"driver": self.driver, "pool": d.pool, "device": d.device, "data": {"uuid": device_uuid(d)}}
            for d in devices
        ]
        path = f"/apis/resource.k8s.io/v1/namespaces/{ref.namespace}/resourceclaims/{ref.name}"
        for _ in range(5):
            try:
                current = self.kube.get(path)
                if current is None or current["metadata"]["uid"] != ref.uid:
                    return
                status = current.setdefault("status", {})
                keep = [d for d in status.get("devices") or [] if d.get("driver") != self.driver]
                status["devices"] = keep + ours
                self.kube.replace(f"{path}/status", current)
                return
            except ApiError as exc:
                if not exc.conflict:
                    clog.warning("could not record device status on the claim (the server may not allow it): %s", exc)
                    return
        clog.warning("could not record device status on the claim: it kept changing")

    # --- unprepare -----------------------------------------------------------------------------

    def unprepare_claim(self, uid: str) -> None:
        with self.locks.claim(uid):
            self._unprepare_claim(uid)

    def _unprepare_claim(self, uid: str) -> None:
        record = self.checkpoint.get(uid)
        if record is None:
            return  # unknown or already unprepared: success
        with self.locks.hold({d.hardware.gpu_index for d in record.devices}):
            # Forget the claim first: from here on whatever is left of it is unowned, and start-up repair
            # reclaims unowned partitions and specs if this process dies before finishing.
            self.checkpoint.remove(uid)
            remaining = [d for r in self.checkpoint.claims().values() for d in r.devices]
            for device in reversed(record.devices):
                self.hardware.undo(device, remaining)
            cdi.remove_spec(self.cdi_dir, cdi.spec_file_name(self.kind, uid))
