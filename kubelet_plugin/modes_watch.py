"""The node side of the NodeGpuModes hand-off: watch this node's object, change idle GPUs, write status.

A ``ListWatch`` (``fieldSelector metadata.name=<node>``) keeps the object; each list or event wakes one worker
thread, which reconciles every GPU the spec names or that still has a mode applied from an earlier spec:

1. the desired mode: the spec's entry, else the PartitioningConfig's (``api.gpumodes.mode_for``);
2. ``modes.decide``: Keep, Wait (a claim is prepared on the GPU, from the checkpoint, or allocated on one of its
   published devices, from the ResourceClaims whose allocation names this driver and this node's pool),
   Refuse, or Change;
3. a Change runs under the GPU's lock (no prepare on it meanwhile): the GPU's devices are withdrawn from the
   slices first (``draining``; published, waited for), then the checkpoint and the claims are checked again (a
   claim allocated meanwhile puts the devices back: Pending); then instances destroyed, MIG mode set, the GPU reset when the mode is pending on a reset (once per desired mode:
   a failed reset is reported as ResetRequired and not retried until the spec changes or the plugin restarts),
   the static layout created (all or nothing);
4. the applied modes are saved (``<state-dir>/gpumodes.json``, ``modes_state``) so a restarted plugin keeps
   publishing them, the inventory is read again and the slices republished (waiting, boundedly, until they are);
   a GPU whose change is under way is named in ``gpumodes-changing.json`` meanwhile: when a killed plugin left it
   there, the next one keeps the GPU unpublished until a change on it completes or it is found in the desired
   mode (Pending and Refused say so in their reason);
5. then ``status`` is written (merge patch on the status subresource), only when it changed.

GPUs that are Pending are looked at again every ``retry_s`` seconds (claims end without an event here).
Known gap: a scheduler whose cache has not yet seen the withdrawal may still allocate a device of the old mode
after the second check; such a claim is refused at prepare time, since its device is no longer published.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, assert_never

from api.errors import ConfigError
from api.gpumodes import (
    API_VERSION,
    PLURAL,
    GpuModeSpec,
    GpuModeStatus,
    NodeGpuModes,
    NodeGpuModesSpec,
    NodeGpuModesStatus,
    State,
    parse_object,
    render_status,
)
from api.partitioning import GpuMode
from dra_driver.inventory import Gpu, Inventory
from dra_driver.k8s import ApiError, Kube, Obj, resource_path
from dra_driver.resourceslice.backoff import Backoff
from dra_driver.resourceslice.listwatch import ListWatch
from kubelet_plugin.hardware import HARDWARE_ERRORS
from kubelet_plugin.locks import GpuLocks
from kubelet_plugin.modes import Change, Keep, Refuse, Wait, busy_reason, decide, gpu_status, node_status, plan_layout
from kubelet_plugin.modes_hardware import ModeHardware
from kubelet_plugin.modes_state import CHANGING_FILE, load_changing, save_applied, save_changing
from kubelet_plugin.modes_state import STATE_FILE as STATE_FILE
from kubelet_plugin.modes_state import load_applied as load_applied

log = logging.getLogger(__name__)
INTERRUPTED = "its devices stay unpublished: a change of its mode was interrupted (plugin restart)"
Outcome = tuple[State, str | None]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GpuModesWatch:
    def __init__(
        self,
        kube: Kube,
        node: str,
        driver: str,
        resource_api: str,  # the served resource.k8s.io version ("v1", "v1beta1", ...)
        state_file: Path,
        hardware: ModeHardware,
        locks: GpuLocks,
        inventory: Callable[[], Inventory],
        config_mode: Callable[[Gpu], GpuMode],
        prepared: Callable[[], Mapping[str, list[str]]],  # GPU UUID -> "namespace/name" of claims prepared on it
        device_gpu: Callable[[], Mapping[str, int]],  # published device name -> GPU index
        republish: Callable[[], None],  # read the inventory again, publish, wait (bounded) for the slices
        partitionable: bool,
        retry_s: float = 10.0,
    ) -> None:
        self.kube = kube
        self.node = node
        self.driver = driver
        self.resource_api = resource_api
        self.state_file = state_file
        self.hardware = hardware
        self.locks = locks
        self.inventory = inventory
        self.config_mode = config_mode
        self.prepared = prepared
        self.device_gpu = device_gpu
        self.republish = republish
        self.partitionable = partitionable
        self.retry_s = retry_s
        self.applied = load_applied(state_file)
        self._object: NodeGpuModes | None = None
        self._invalid: str | None = None  # why the object could not be read
        self._reset_failed: dict[tuple[str, bool], str] = {}
        self._changing_file = state_file.with_name(CHANGING_FILE)
        self._changing = load_changing(self._changing_file)  # changes begun and not ended
        if self._changing:
            log.warning("mode changes of GPUs %s were interrupted: not published until done", sorted(self._changing))
        self._draining: set[str] = set(self._changing)
        self._cond = threading.Condition()
        self._dirty = False
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self.watch = ListWatch(
            kube,
            resource_path(API_VERSION, PLURAL),
            {"fieldSelector": f"metadata.name={node}"},
            self._on_list,
            self._on_event,
            backoff=Backoff(0.5, 30.0),  # a cluster without the CRD answers 404: look again slowly
            name="gpumodes-watch",
        )

    # -- what the slices publish --------------------------------------------------------------------------------

    def applied_mode(self, uuid: str) -> GpuModeSpec | None:
        """The mode applied from a NodeGpuModes spec to this GPU, if any (else the PartitioningConfig decides)."""
        with self._cond:
            return self.applied.get(uuid)

    def draining(self) -> frozenset[str]:
        """GPUs about to change: their devices are not published meanwhile."""
        with self._cond:
            return frozenset(self._draining)

    def _drain(self, uuid: str, on: bool) -> None:
        with self._cond:
            if on:
                self._draining.add(uuid)
            else:
                self._draining.discard(uuid)
        self.republish()

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="gpumodes", daemon=True)
        self._worker.start()
        self.watch.start()

    def stop(self) -> None:
        self._stopping.set()
        self.watch.stop()
        with self._cond:
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=30)

    def _on_list(self, items: list[Obj]) -> None:
        self._set(items[0] if items else None)

    def _on_event(self, kind: str, obj: Obj) -> None:
        self._set(None if kind == "DELETED" else obj)

    def _set(self, raw: Obj | None) -> None:
        with self._cond:
            try:
                self._object, self._invalid = (parse_object(raw) if raw is not None else None), None
            except ConfigError as exc:
                log.error("NodeGpuModes %s: %s; no change made", self.node, exc)
                self._object, self._invalid = None, str(exc)
            self._dirty = True
            self._cond.notify_all()

    def _run(self) -> None:
        retry: float | None = None
        while not self._stopping.is_set():
            with self._cond:
                if not self._dirty:
                    self._cond.wait(retry)
                self._dirty = False
            if self._stopping.is_set():
                return
            try:
                retry = self.retry_s if self.reconcile() else None
            except Exception:
                log.exception("NodeGpuModes %s: reconcile failed; again in %.0fs", self.node, self.retry_s)
                retry = self.retry_s

    # -- one pass -----------------------------------------------------------------------------------------------

    def reconcile(self) -> bool:
        """Act on every named GPU and write status; True when something is Pending (look again later)."""
        with self._cond:
            obj, invalid = self._object, self._invalid
        if invalid is not None:
            return False
        spec = obj.spec if obj is not None else NodeGpuModesSpec()
        inv = self.inventory()
        named = [g.uuid for g in spec.gpus] + [u for u in self.applied if spec.for_gpu(u) is None]
        named += sorted(u for u in self._changing if u not in named)  # interrupted, whatever the spec says now
        blocked = None
        try:
            busy = self._busy(inv)
        except ApiError as exc:  # cannot tell which GPUs are free: none changes
            log.warning("NodeGpuModes %s: cannot list ResourceClaims: %s", self.node, exc)
            busy, blocked = (
                {},
                f"ResourceClaims could not be listed to check allocations ({exc}); no change until they can",
            )
        outcomes: dict[str, Outcome] = {}
        changed = False
        for uuid in named:
            gpu = next((g for g in inv.gpus if g.uuid == uuid), None)
            if gpu is None:
                outcomes[uuid] = ("Refused", f"node {self.node} has no healthy GPU {uuid}")
                continue
            outcomes[uuid], did = self._one(gpu, spec, busy.get(uuid, []), blocked)
            changed = changed or did
        if changed:
            self.republish()
            inv = self.inventory()
        if obj is not None:
            self._write_status(obj, inv, outcomes)
        return any(state == "Pending" for state, _ in outcomes.values())

    def _one(self, gpu: Gpu, spec: NodeGpuModesSpec, busy: list[str], blocked: str | None) -> tuple[Outcome, bool]:
        config = GpuModeSpec(gpu.uuid, self.config_mode(gpu))
        desired = spec.for_gpu(gpu.uuid) or config
        current = self.applied_mode(gpu.uuid) or config
        decision = decide(gpu, current, desired, busy, self.partitionable)
        if isinstance(decision, Keep) and gpu.uuid in self._changing:  # the interrupted change had got there
            self._mark(gpu.uuid, False)
            self._drain(gpu.uuid, False)
        match decision:
            case Keep():
                entry = spec.for_gpu(gpu.uuid)
                if (entry is None and gpu.uuid in self.applied) or (entry and self.applied.get(gpu.uuid) != entry):
                    self._record(gpu.uuid, entry)  # None: back to the PartitioningConfig's mode
                return ("Applied", None), False
            case Wait(reason) | Refuse(reason):
                reason += f"; {INTERRUPTED}" if gpu.uuid in self._changing else ""
                return ("Pending" if isinstance(decision, Wait) else "Refused", reason), False
            case Change():
                if blocked is not None:
                    return ("Pending", blocked), False
                outcome = self._change(gpu, desired, decision, spec.for_gpu(gpu.uuid))
                if outcome[0] == "Applied":
                    log.info("GPU %d (%s): %s -> %s", gpu.index, gpu.uuid, current.mode, desired.mode)
                return outcome, True
            case _:
                assert_never(decision)

    def _record(self, uuid: str, mode: GpuModeSpec | None) -> None:
        with self._cond:
            if mode is None:
                self.applied.pop(uuid, None)
            else:
                self.applied[uuid] = mode
            save_applied(self.state_file, self.applied)

    def _change(self, gpu: Gpu, desired: GpuModeSpec, change: Change, entry: GpuModeSpec | None) -> Outcome:
        """Drain, change, record the applied mode (``entry``; None: the PartitioningConfig's), publish again."""
        with self.locks.hold([gpu.index]):
            self._drain(gpu.uuid, True)
            self._mark(gpu.uuid, True)
            # an unexpected error leaves the GPU marked and unpublished: the next pass finishes the change
            outcome = self._drained_change(gpu, desired, change)
            if outcome[0] == "Applied":
                self._record(gpu.uuid, entry)  # before the devices come back, in their new mode
            self._mark(gpu.uuid, False)
            self._drain(gpu.uuid, False)
            return outcome

    def _mark(self, uuid: str, changing: bool) -> None:
        with self._cond:
            if (uuid in self._changing) != changing:
                (self._changing.add if changing else self._changing.discard)(uuid)
                save_changing(self._changing_file, self._changing)

    def _drained_change(self, gpu: Gpu, desired: GpuModeSpec, change: Change) -> Outcome:
        """The change, once the GPU's devices are withdrawn: unless a claim came meanwhile."""
        try:
            reason = busy_reason(self._busy(self.inventory()).get(gpu.uuid, []))
        except ApiError as exc:
            return "Pending", f"ResourceClaims could not be listed to check allocations ({exc}); no change made"
        if reason is not None:
            return "Pending", reason
        try:
            if gpu.mig_enabled:
                self.hardware.clear_instances(gpu.index)
            if change.mig_enabled is not None:
                blocked = self._mig_mode(gpu, change.mig_enabled)
                if blocked is not None:
                    return blocked
            layout = change.layout
            if change.after_mig_on is not None:  # MIG was off: the GPU lists its profiles only now
                on = replace(gpu, mig_enabled=True, mig_profiles=self.hardware.mig_profiles(gpu.index))
                planned = plan_layout(on, change.after_mig_on)
                if isinstance(planned, str):
                    back = self._mig_mode(gpu, False)  # all or nothing: as it was
                    return "Refused", planned + ("" if back is None else f"; MIG mode not set back off: {back[1]}")
                layout = planned
            if layout is not None:
                try:
                    self.hardware.create_layout(gpu.index, layout)
                except HARDWARE_ERRORS as exc:
                    return (
                        "Refused",
                        f"MIG layout {', '.join(desired.mig_layout or ())} not made (none kept): {exc}",
                    )
        except HARDWARE_ERRORS as exc:
            return "Pending", f"changing GPU {gpu.index} failed: {exc}"
        return "Applied", None

    def _mig_mode(self, gpu: Gpu, enabled: bool) -> Outcome | None:
        current, pending = self.hardware.mig_mode(gpu.index)
        if current == enabled:
            return None
        if pending != enabled:
            self.hardware.set_mig_mode(gpu.index, enabled)
            current, _ = self.hardware.mig_mode(gpu.index)
            if current == enabled:
                return None
        key = (gpu.uuid, enabled)
        failed = self._reset_failed.get(key)
        if failed is not None:
            return "ResetRequired", failed
        try:
            self.hardware.reset(gpu.index, gpu.uuid)
        except HARDWARE_ERRORS as exc:
            failed = f"MIG mode {'on' if enabled else 'off'} waits for a GPU reset, which failed: {exc}"
            self._reset_failed[key] = failed
            return "ResetRequired", failed
        current, _ = self.hardware.mig_mode(gpu.index)
        if current != enabled:
            failed = f"MIG mode {'on' if enabled else 'off'} is still pending after a GPU reset"
            self._reset_failed[key] = failed
            return "ResetRequired", failed
        return None

    # -- who uses a GPU -----------------------------------------------------------------------------------------

    def _busy(self, inv: Inventory) -> dict[str, list[str]]:
        """GPU UUID -> claims prepared on it (checkpoint) or allocated on one of its published devices."""
        busy = {uuid: list(claims) for uuid, claims in self.prepared().items()}
        by_index = {g.index: g.uuid for g in inv.gpus}
        devices = self.device_gpu()
        path = f"/apis/resource.k8s.io/{self.resource_api}/resourceclaims"
        for claim in self.kube.list(path):
            for device in _allocated(claim, self.driver, self.node):
                uuid = by_index.get(devices.get(device, -1))
                if uuid is not None:
                    meta = claim.get("metadata") or {}
                    busy.setdefault(uuid, []).append(f"{meta.get('namespace')}/{meta.get('name')}")
        return busy

    # -- status -------------------------------------------------------------------------------------------------

    def _write_status(self, obj: NodeGpuModes, inv: Inventory, outcomes: Mapping[str, Outcome]) -> None:
        stamp = now()
        gpus: list[GpuModeStatus] = []
        problems: list[str] = []
        for uuid, (state, reason) in outcomes.items():
            gpu = next((g for g in inv.gpus if g.uuid == uuid), None)
            if gpu is None:  # no observed mode to report: said in the condition
                problems.append(f"{uuid}: {state}: {reason}")
                continue
            current = self.applied_mode(uuid) or GpuModeSpec(uuid, self.config_mode(gpu))
            gpus.append(gpu_status(obj.status.for_gpu(uuid), uuid, current, state, reason, stamp))
        status = node_status(obj.status, obj.generation, tuple(gpus), stamp, tuple(problems))
        if status == obj.status:
            return
        try:
            self.kube.patch(resource_path(API_VERSION, PLURAL, self.node, subresource="status"), _status_patch(status))
        except ApiError as exc:
            log.warning("NodeGpuModes %s: status not written: %s", self.node, exc)


def _status_patch(status: NodeGpuModesStatus) -> dict[str, Any]:
    return {"status": render_status(status)}


def _allocated(claim: Obj, driver: str, node: str) -> Iterable[str]:
    """Names of this node's devices of ``driver`` allocated to the claim."""
    allocation = (claim.get("status") or {}).get("allocation") or {}
    for result in (allocation.get("devices") or {}).get("results") or []:
        if result.get("driver") == driver and result.get("pool") == node:
            yield str(result.get("device"))
