"""The plugin's crash-safe checkpoint: which claims it has prepared, and what it did to the hardware for each.

A versioned JSON document, replaced atomically (temp file + fsync + rename + fsync dir) on every change::

    {"version": 2, "bootID": "…", "claims": {"<uid>": {"namespace": …, "name": …,
        "state": "PrepareStarted" | "PrepareCompleted" | "UnprepareStarted", "devices": [<device>…], "cdiSpec": "<file>" | null}}}

Two phases: ``start`` records a claim as ``PrepareStarted`` (with what is about to be done) before any side
effect; ``complete`` records the prepared devices and CDI spec as ``PrepareCompleted``. A claim still
``PrepareStarted`` at start-up was interrupted and must be rolled back or redone. Undoing a claim (unprepare,
or the roll-back of a failed prepare) is recorded too: ``start_unprepare`` marks it ``UnprepareStarted``
with the devices still to undo, ``unprepare_progress`` shrinks that list as each is undone, ``remove``
forgets the claim once nothing is left. A claim still ``UnprepareStarted`` was interrupted, or its
hardware did not answer: the undo is retried. ``bootID`` is the boot
the recorded hardware state belongs to: MIG partitions, time-slice settings and MPS daemons do not
survive a reboot, so ``boot_changed`` tells start-up repair to check everything against the hardware;
``acknowledge_boot`` adopts the current boot once repair is done.

Every version ever written is read: version 1 (no ``bootID``, ``"prepared": bool``, whole GPUs only) is
migrated on load. A document that cannot be read is never dropped silently: ``CorruptCheckpoint`` says
what is wrong and what to do. JSON conversion lives in the ``_*_json`` / ``_read_*`` functions only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

from api.config import strict
from api.errors import ConfigError
from dra_driver.cdi.atomic import write_atomically
from dra_driver.errors import FatalError
from dra_driver.kubeletplugin.protocol import ClaimRef
from kubelet_plugin.records import (
    HARDWARE_KEYS,
    STATES,
    ClaimRecord,
    DeviceRecord,
    Document,
    Hardware,
    MigPartition,
    MpsSettings,
    SharedGpu,
    State,
    TimeSliceReplica,
    WholeGpu,
)

__all__ = [
    "Checkpoint",
    "ClaimRecord",
    "CorruptCheckpoint",
    "DeviceRecord",
    "Document",
    "Hardware",
    "MigPartition",
    "MpsSettings",
    "SharedGpu",
    "State",
    "TimeSliceReplica",
    "WholeGpu",
]

VERSION = 2
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


class CorruptCheckpoint(FatalError):
    """The checkpoint file exists but cannot be read; the plugin must not guess which claims are prepared."""


# -- JSON (version 2) --------------------------------------------------------------------------------------


def _hardware_json(hw: Hardware) -> dict[str, Any]:
    match hw:
        case WholeGpu() | SharedGpu():
            return {"gpuUUID": hw.gpu_uuid, "gpuIndex": hw.gpu_index}
        case TimeSliceReplica():
            return {"gpuUUID": hw.gpu_uuid, "gpuIndex": hw.gpu_index, "interval": hw.interval}
        case MigPartition():
            return {
                "gpuUUID": hw.gpu_uuid,
                "gpuIndex": hw.gpu_index,
                "profile": hw.profile,
                "placement": {"start": hw.placement_start, "size": hw.placement_size},
                "gpuInstanceID": hw.gpu_instance_id,
                "computeInstanceID": hw.compute_instance_id,
                "migUUID": hw.mig_uuid,
                "created": hw.created,
            }


def _device_json(d: DeviceRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requestNames": list(d.request_names),
        "pool": d.pool,
        "device": d.device,
        "cdiDeviceIDs": list(d.cdi_device_ids),
        "shareID": d.share_id,
        HARDWARE_KEYS[type(d.hardware)]: _hardware_json(d.hardware),
    }
    if d.mps is not None:
        out["mps"] = {
            "controlDaemon": d.mps.control_daemon,
            "pipeDirectory": d.mps.pipe_directory,
            "activeThreadPercentage": d.mps.active_thread_percentage,
            "pinnedMemoryLimits": dict(d.mps.pinned_memory_limits),
        }
    return out


def document_json(doc: Document) -> dict[str, Any]:
    claims = {
        uid: {
            "namespace": c.claim.namespace,
            "name": c.claim.name,
            "state": c.state,
            "devices": [_device_json(d) for d in c.devices],
            "cdiSpec": c.cdi_spec,
        }
        for uid, c in sorted(doc.claims.items())
    }
    return {"version": VERSION, "bootID": doc.boot_id, "claims": claims}


T = TypeVar("T")


def _opt(value: object, read: Callable[[object, str], T], field: str) -> T | None:
    return None if value is None else read(value, field)


def _read_gpu(o: Mapping[str, Any], f: str) -> tuple[str, int]:
    return strict.want_str(o.get("gpuUUID"), f"{f}.gpuUUID"), strict.want_int(o.get("gpuIndex"), f"{f}.gpuIndex", 0)


def _read_hardware(raw: Mapping[str, Any], f: str) -> Hardware:
    kinds = [k for k in HARDWARE_KEYS.values() if k in raw]
    if len(kinds) != 1:
        raise ConfigError(f, f"needs exactly one of {', '.join(HARDWARE_KEYS.values())}, found {kinds or 'none'}")
    at = f"{f}.{kinds[0]}"
    o = strict.want_mapping(raw[kinds[0]], at)
    uuid, index = _read_gpu(o, at)
    if kinds[0] == "gpu":
        strict.check_keys(o, ("gpuUUID", "gpuIndex"), at)
        return WholeGpu(uuid, index)
    if kinds[0] == "shared":
        strict.check_keys(o, ("gpuUUID", "gpuIndex"), at)
        return SharedGpu(uuid, index)
    if kinds[0] == "timeslice":
        strict.check_keys(o, ("gpuUUID", "gpuIndex", "interval"), at)
        return TimeSliceReplica(uuid, index, strict.want_str(o.get("interval"), f"{at}.interval"))
    keys = ("gpuUUID", "gpuIndex", "profile", "placement", "gpuInstanceID", "computeInstanceID", "migUUID", "created")
    strict.check_keys(o, keys, at)
    placement = strict.want_mapping(o.get("placement"), f"{at}.placement")
    strict.check_keys(placement, ("start", "size"), f"{at}.placement")
    return MigPartition(
        uuid,
        index,
        strict.want_str(o.get("profile"), f"{at}.profile"),
        strict.want_int(placement.get("start"), f"{at}.placement.start", 0),
        strict.want_int(placement.get("size"), f"{at}.placement.size", 1),
        _opt(o.get("gpuInstanceID"), strict.want_int, f"{at}.gpuInstanceID"),
        _opt(o.get("computeInstanceID"), strict.want_int, f"{at}.computeInstanceID"),
        _opt(o.get("migUUID"), strict.want_str, f"{at}.migUUID"),
        strict.want_bool(o.get("created"), f"{at}.created"),
    )


def _read_mps(raw: object, f: str) -> MpsSettings:
    o = strict.want_mapping(raw, f)
    strict.check_keys(o, ("controlDaemon", "pipeDirectory", "activeThreadPercentage", "pinnedMemoryLimits"), f)
    limits = strict.want_mapping(o.get("pinnedMemoryLimits", {}), f"{f}.pinnedMemoryLimits")
    return MpsSettings(
        strict.want_str(o.get("controlDaemon"), f"{f}.controlDaemon"),
        strict.want_str(o.get("pipeDirectory"), f"{f}.pipeDirectory"),
        _opt(o.get("activeThreadPercentage"), strict.want_int, f"{f}.activeThreadPercentage"),
        tuple((k, strict.want_int(v, f"{f}.pinnedMemoryLimits.{k}", 1)) for k, v in limits.items()),
    )


def _read_device(raw: object, f: str) -> DeviceRecord:
    o = strict.want_mapping(raw, f)
    common = ("requestNames", "pool", "device", "cdiDeviceIDs", "shareID", "mps")
    strict.check_keys(o, (*common, *HARDWARE_KEYS.values()), f)
    return DeviceRecord(
        strict.want_str_list(o.get("requestNames"), f"{f}.requestNames"),
        strict.want_str(o.get("pool"), f"{f}.pool"),
        strict.want_str(o.get("device"), f"{f}.device"),
        _read_hardware(o, f),
        strict.want_str_list(o.get("cdiDeviceIDs"), f"{f}.cdiDeviceIDs"),
        _opt(o.get("shareID"), strict.want_str, f"{f}.shareID"),
        _opt(o.get("mps"), _read_mps, f"{f}.mps"),
    )


def _read_claims(raw: object, f: str) -> dict[str, ClaimRecord]:
    claims = {}
    for uid, value in strict.want_mapping(raw, f).items():
        at = f"{f}[{uid!r}]"
        o = strict.want_mapping(value, at)
        strict.check_keys(o, ("namespace", "name", "state", "devices", "cdiSpec"), at)
        namespace, name = (
            strict.want_str(o.get("namespace"), f"{at}.namespace"),
            strict.want_str(o.get("name"), f"{at}.name"),
        )
        state = strict.want_choice(o.get("state"), f"{at}.state", STATES, "state")
        raw_devices = strict.want_list(o.get("devices"), f"{at}.devices")
        claims[uid] = ClaimRecord(
            ClaimRef(namespace, uid, name),
            cast(State, state),  # want_choice checked it is one of STATES
            tuple(_read_device(d, f"{at}.devices[{i}]") for i, d in enumerate(raw_devices)),
            _opt(o.get("cdiSpec"), strict.want_str, f"{at}.cdiSpec"),
        )
    return claims


def _migrate_v1(o: Mapping[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: ``prepared`` bool -> ``state``; devices were whole GPUs with flat gpuUUID/gpuIndex."""
    strict.check_keys(o, ("version", "claims"), "")
    claims = {}
    for uid, raw in strict.want_mapping(o.get("claims"), "claims").items():
        at = f"claims[{uid!r}]"
        c = strict.want_mapping(raw, at)
        strict.check_keys(c, ("namespace", "name", "prepared", "devices", "cdiSpec"), at)
        devices = []
        for i, raw_device in enumerate(strict.want_list(c.get("devices"), f"{at}.devices")):
            d = dict(strict.want_mapping(raw_device, f"{at}.devices[{i}]"))
            v1_keys = ("requestNames", "pool", "device", "cdiDeviceIDs", "gpuUUID", "gpuIndex")
            strict.check_keys(d, v1_keys, f"{at}.devices[{i}]")
            gpu = {"gpuUUID": d.pop("gpuUUID", None), "gpuIndex": d.pop("gpuIndex", None)}
            devices.append({**d, "gpu": gpu})
        prepared = strict.want_bool(c.get("prepared"), f"{at}.prepared")
        state = "PrepareCompleted" if prepared else "PrepareStarted"
        claims[uid] = {**{k: v for k, v in c.items() if k != "prepared"}, "state": state, "devices": devices}
    return {"version": 2, "bootID": None, "claims": claims}


def read_document(text: bytes | str) -> Document:
    """Parse a checkpoint of any version this plugin ever wrote; raises ``ConfigError`` naming the bad field."""
    o = strict.want_mapping(strict.loads_json(text, ""), "<root>")
    version = strict.want_int(o.get("version"), "version", 1)
    if version > VERSION:
        raise ConfigError("version", f"{version} was written by a newer plugin (this one reads 1..{VERSION})")
    if version == 1:
        o = _migrate_v1(o)
    strict.check_keys(o, ("version", "bootID", "claims"), "")
    return Document(_opt(o.get("bootID"), strict.want_str, "bootID"), _read_claims(o.get("claims"), "claims"))


def read_boot_id(path: Path = BOOT_ID_PATH) -> str:
    """This boot's ID (a UUID the kernel draws at boot)."""
    return path.read_text().strip()


# -- the checkpoint file -----------------------------------------------------------------------------------


class Checkpoint:
    """The checkpoint of one plugin, held in memory and written through on every change (thread-safe)."""

    def __init__(self, path: Path, document: Document, current_boot_id: str) -> None:
        self.path = path
        self.current_boot_id = current_boot_id
        self._doc = document
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path, boot_id: str | None = None) -> Checkpoint:
        """Read ``path`` (an absent file is an empty checkpoint of this boot); ``boot_id`` defaults to this boot's."""
        current = boot_id if boot_id is not None else read_boot_id()
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return cls(path, Document(current, {}), current)
        try:
            return cls(path, read_document(text), current)
        except ConfigError as e:
            raise CorruptCheckpoint(
                f"checkpoint {path} cannot be read: {e}. The plugin cannot tell which claims it prepared. "
                f"Move the file away (mv {path} {path}.corrupt) and restart the plugin: the kubelet will "
                "prepare running pods' claims again; check the GPUs for leftover MIG partitions."
            ) from e

    @property
    def boot_id(self) -> str | None:
        """The boot the recorded hardware state belongs to (None: unknown)."""
        return self._doc.boot_id

    @property
    def boot_changed(self) -> bool:
        """True when the recorded state may predate a reboot: repair must check it against the hardware."""
        return self._doc.boot_id != self.current_boot_id

    def claims(self) -> Mapping[str, ClaimRecord]:
        return dict(self._doc.claims)

    def get(self, uid: str) -> ClaimRecord | None:
        return self._doc.claims.get(uid)

    def save(self) -> None:
        with self._lock:
            self._write(self._doc)

    def start(self, claim: ClaimRef, devices: tuple[DeviceRecord, ...] = ()) -> None:
        """Phase 1, before any side effect: the claim is being prepared with (planned) ``devices``.

        Refuses (ValueError) a claim already recorded: return a completed one's devices, roll back a started one.
        """
        with self._lock:
            if claim.uid in self._doc.claims:
                raise ValueError(f"claim {claim} is already {self._doc.claims[claim.uid].state}")
            self._commit(claim.uid, ClaimRecord(claim, "PrepareStarted", devices))

    def progress(self, uid: str, devices: tuple[DeviceRecord, ...]) -> None:
        """Still phase 1: record what has been done so far (e.g. a GPU instance's ID once created)."""
        self._update(uid, "PrepareStarted", devices, None)

    def complete(self, uid: str, devices: tuple[DeviceRecord, ...], cdi_spec: str | None) -> None:
        """Phase 2, after every side effect: the claim is prepared and its CDI spec written."""
        self._update(uid, "PrepareCompleted", devices, cdi_spec)

    def start_unprepare(self, uid: str, devices: tuple[DeviceRecord, ...]) -> None:
        """Before undoing anything: the claim (in any state) is being undone; ``devices`` are what to undo."""
        with self._lock:
            record = self._doc.claims.get(uid)
            if record is None:
                raise ValueError(f"claim {uid} is not recorded: there is nothing to undo")
            self._commit(uid, replace(record, state="UnprepareStarted", devices=devices, cdi_spec=None))

    def unprepare_progress(self, uid: str, devices: tuple[DeviceRecord, ...]) -> None:
        """Still undoing: ``devices`` are what is left to undo (the others are done)."""
        self._update(uid, "UnprepareStarted", devices, None, expect="UnprepareStarted")

    def remove(self, uid: str) -> None:
        """The claim is unprepared (idempotent: removing an unknown claim writes nothing)."""
        with self._lock:
            if uid in self._doc.claims:
                self._commit(uid, None)

    def acknowledge_boot(self) -> None:
        """Repair is done: the recorded state now describes this boot."""
        with self._lock:
            doc = replace(self._doc, boot_id=self.current_boot_id)
            self._write(doc)
            self._doc = doc

    def _update(
        self,
        uid: str,
        state: State,
        devices: tuple[DeviceRecord, ...],
        cdi_spec: str | None,
        expect: State = "PrepareStarted",
    ) -> None:
        with self._lock:
            record = self._doc.claims.get(uid)
            if record is None or record.state != expect:
                first = "start()" if expect == "PrepareStarted" else "start_unprepare()"
                raise ValueError(f"claim {uid} is {record.state if record else 'not recorded'}: call {first} first")
            self._commit(uid, replace(record, state=state, devices=devices, cdi_spec=cdi_spec))

    def _commit(self, uid: str, record: ClaimRecord | None) -> None:
        claims = {k: v for k, v in self._doc.claims.items() if k != uid}
        if record is not None:
            claims[uid] = record
        doc = replace(self._doc, claims=claims)
        self._write(doc)
        self._doc = doc  # only once durable: memory never runs ahead of the file

    def _write(self, doc: Document) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, (json.dumps(document_json(doc), indent=2) + "\n").encode(), 0o600)
