"""The plugin's crash-safe checkpoint: which claims it has prepared, and what it did to the hardware for each.

A versioned JSON document (``checkpoint_json``), held in memory and written through on every change, in two
pairs of slot files next to ``path`` (``checkpoint_slots``; docs/kubelet-plugin.md, "Durable writes"):

- ``checkpoint.json.durable-0`` / ``-1``: written in place + fsync (no temp file, no rename; the directory is
  fsynced once per slot and process) by the changes the kubelet is answered after, which must survive a power
  loss: ``complete``, ``prepared``, ``remove``, ``acknowledge_boot``, ``save``.
- ``checkpoint.json.volatile-0`` / ``-1``: written in place, no fsync, by the records of work in flight
  (``start``, ``progress``, ``start_unprepare``, ``unprepare_progress``). Another process, and this one after
  a SIGKILL, reads them, because the page cache survives the process; only a power loss or kernel crash can
  lose them, and that reboots the node, which undoes the hardware work they describe anyway.

A write goes to the slot of its pair not holding the newest document, framed by length and CRC-32, so one
cut short leaves the state before it readable. Every document carries a ``generation`` (+1 per write);
``load`` takes the newest whole one. ``checkpoint.json`` itself, an older plugin's single file, is read where
no durable slot exists yet and removed after the first durable write. Memory changes only once a write is done.

Two phases: ``start`` records a claim as ``PrepareStarted`` (with what is about to be done) before any side
effect; ``complete`` records the prepared devices and CDI spec as ``PrepareCompleted``. A claim whose devices
touch no GPU has both at once (``prepared``, after its CDI spec is written). A claim still
``PrepareStarted`` at start-up was interrupted and must be rolled back or redone. Undoing a claim (unprepare,
or the roll-back of a failed prepare) is recorded too: ``start_unprepare`` marks it ``UnprepareStarted``
with the devices still to undo, ``unprepare_progress`` shrinks that list as each is undone, ``remove``
forgets the claim once nothing is left. A claim still ``UnprepareStarted`` was interrupted, or its
hardware did not answer: the undo is retried. ``bootID`` is the boot the recorded hardware state belongs
to: MIG partitions, time-slice settings and MPS daemons do not survive a reboot, so ``boot_changed`` tells
start-up repair to check everything against the hardware; ``acknowledge_boot`` adopts the current boot
once repair is done.

Every version ever written is read (versions 1 and 2 are migrated on load). A durable copy that cannot be
read (an older plugin's file, or both durable slots) is never dropped silently: ``CorruptCheckpoint`` says what
is wrong and what to do.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from api.errors import ConfigError
from dra_driver.cdi.atomic import stale_temp_files
from dra_driver.errors import FatalError
from dra_driver.kubeletplugin.protocol import ClaimRef
from kubelet_plugin.checkpoint_json import document_json, read_document
from kubelet_plugin.checkpoint_slots import Slots
from kubelet_plugin.records import (
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
    "document_json",
    "read_boot_id",
    "read_document",
]

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
DURABLE_SUFFIX, VOLATILE_SUFFIX = ".durable", ".volatile"
log = logging.getLogger(__name__)


class CorruptCheckpoint(FatalError):
    """The durable checkpoint exists but cannot be read; the plugin must not guess which claims are prepared."""


def read_boot_id(path: Path = BOOT_ID_PATH) -> str:
    """This boot's ID (a UUID the kernel draws at boot)."""
    return path.read_text().strip()


# -- the checkpoint file -----------------------------------------------------------------------------------


class Checkpoint:
    """The checkpoint of one plugin, held in memory and written through on every change (thread-safe)."""

    def __init__(self, path: Path, document: Document, current_boot_id: str) -> None:
        self.path = path
        self.durable, self.volatile = durable_slots(path), volatile_slots(path)
        self.current_boot_id = current_boot_id
        self._doc = document
        self._lock = threading.Lock()
        self._directory_made = False
        self._legacy_gone = False

    @classmethod
    def load(cls, path: Path, boot_id: str | None = None) -> Checkpoint:
        """Read the slots next to ``path`` (or, where no durable slot exists, an older plugin's file ``path``;
        nothing: an empty checkpoint of this boot); ``boot_id`` defaults to this boot's. Reads only."""
        current = boot_id if boot_id is not None else read_boot_id()
        found = _read_durable(path) + [d for _, d in volatile_slots(path).read()[0]]
        doc = max(found, key=lambda d: d.generation) if found else Document(current, {})
        return cls(path, doc, current)

    def remove_stale_temp_files(self) -> list[Path]:
        """Temporary files an older plugin's killed write left next to the checkpoint (start-up repair)."""
        stale = stale_temp_files(self.path.parent, self.path.name)
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

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
            doc = replace(self._doc, generation=self._doc.generation + 1)
            self._write(doc, durable=True)
            self._doc = doc

    def start(self, claim: ClaimRef, devices: tuple[DeviceRecord, ...] = ()) -> None:
        """Phase 1, before any side effect: the claim is being prepared with (planned) ``devices``.

        Refuses (ValueError) a claim already recorded: return a completed one's devices, roll back a started one.
        """
        with self._lock:
            if claim.uid in self._doc.claims:
                raise ValueError(f"claim {claim} is already {self._doc.claims[claim.uid].state}")
            self._commit(claim.uid, ClaimRecord(claim, "PrepareStarted", devices), durable=False)

    def progress(self, uid: str, devices: tuple[DeviceRecord, ...]) -> None:
        """Still phase 1: record what has been done so far (e.g. a GPU instance's ID once created)."""
        self._update(uid, "PrepareStarted", devices, None)

    def complete(self, uid: str, devices: tuple[DeviceRecord, ...], cdi_spec: str | None) -> None:
        """Phase 2, after every side effect: the claim is prepared and its CDI spec written (durable)."""
        self._update(uid, "PrepareCompleted", devices, cdi_spec, durable=True)

    def prepared(self, claim: ClaimRef, devices: tuple[DeviceRecord, ...], cdi_spec: str | None) -> None:
        """Phases 1 and 2 at once (durable), for a claim whose devices touch no GPU (``hardware.files_only``): its
        CDI spec, written just before, is its only side effect. Refuses (ValueError) a claim already recorded."""
        with self._lock:
            if claim.uid in self._doc.claims:
                raise ValueError(f"claim {claim} is already {self._doc.claims[claim.uid].state}")
            self._commit(claim.uid, ClaimRecord(claim, "PrepareCompleted", devices, cdi_spec), durable=True)

    def start_unprepare(self, uid: str, devices: tuple[DeviceRecord, ...]) -> None:
        """Before undoing anything: the claim (in any state) is being undone; ``devices`` are what to undo."""
        with self._lock:
            record = self._doc.claims.get(uid)
            if record is None:
                raise ValueError(f"claim {uid} is not recorded: there is nothing to undo")
            self._commit(uid, replace(record, state="UnprepareStarted", devices=devices, cdi_spec=None), durable=False)

    def unprepare_progress(self, uid: str, devices: tuple[DeviceRecord, ...]) -> None:
        """Still undoing: ``devices`` are what is left to undo (the others are done)."""
        self._update(uid, "UnprepareStarted", devices, None, expect="UnprepareStarted")

    def remove(self, uid: str) -> None:
        """The claim is unprepared (durable; idempotent: removing an unknown claim writes nothing)."""
        with self._lock:
            if uid in self._doc.claims:
                self._commit(uid, None, durable=True)

    def acknowledge_boot(self) -> None:
        """Repair is done: the recorded state now describes this boot (durable)."""
        with self._lock:
            doc = replace(self._doc, boot_id=self.current_boot_id, generation=self._doc.generation + 1)
            self._write(doc, durable=True)
            self._doc = doc

    def _update(
        self,
        uid: str,
        state: State,
        devices: tuple[DeviceRecord, ...],
        cdi_spec: str | None,
        expect: State = "PrepareStarted",
        durable: bool = False,
    ) -> None:
        with self._lock:
            record = self._doc.claims.get(uid)
            if record is None or record.state != expect:
                first = "start()" if expect == "PrepareStarted" else "start_unprepare()"
                raise ValueError(f"claim {uid} is {record.state if record else 'not recorded'}: call {first} first")
            self._commit(uid, replace(record, state=state, devices=devices, cdi_spec=cdi_spec), durable)

    def _commit(self, uid: str, record: ClaimRecord | None, durable: bool) -> None:
        claims = {k: v for k, v in self._doc.claims.items() if k != uid}
        if record is not None:
            claims[uid] = record
        doc = replace(self._doc, claims=claims, generation=self._doc.generation + 1)
        self._write(doc, durable)
        self._doc = doc  # only once written: memory never runs ahead of the file

    def _write(self, doc: Document, durable: bool) -> None:
        if not self._directory_made:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._directory_made = True
        # compact: indent= drops Python's json to its pure-Python encoder (issue 14: 460k calls per prepare run)
        data = (json.dumps(document_json(doc), separators=(",", ":")) + "\n").encode()
        (self.durable if durable else self.volatile).write(data)
        if durable and not self._legacy_gone:  # superseded by the slots: an older plugin's single file
            try:  # the write above is done: a file that cannot go is only logged (load reads the slots first)
                self.path.unlink(missing_ok=True)
            except OSError as e:
                log.warning(
                    "could not remove the older plugin's checkpoint %s (%s); the slots supersede it", self.path, e
                )
            self._legacy_gone = True

    def close(self) -> None:
        """Close the slots' files (a later write opens them again)."""
        with self._lock:
            self.durable.close()
            self.volatile.close()


def durable_slots(path: Path) -> Slots:
    return Slots(path.with_name(path.name + DURABLE_SUFFIX), durable=True)


def volatile_slots(path: Path) -> Slots:
    return Slots(path.with_name(path.name + VOLATILE_SUFFIX), durable=False)


def _read_durable(path: Path) -> list[Document]:
    """The newest whole durable slot; where no slot exists, the single file of an older plugin (``path``)."""
    slots = durable_slots(path)
    whole, damaged = slots.read()
    if whole:
        return [d for _, d in whole]
    if len(damaged) == 2:
        raise CorruptCheckpoint(
            f"checkpoint {damaged[0]} and {damaged[1]} cannot be read (neither holds a whole document). The "
            f"plugin cannot tell which claims it prepared. Move them away (mv {damaged[0]} {damaged[0]}.corrupt; "
            f"mv {damaged[1]} {damaged[1]}.corrupt) and restart the plugin: the kubelet will prepare running pods' "
            "claims again; check the GPUs for leftover MIG partitions."
        )
    if damaged:  # the first durable write, cut short: the state before it is the older file's, or none
        log.warning("passing over %s: the first write to it was cut short", damaged[0])
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        return [read_document(text)]
    except ConfigError as e:
        raise CorruptCheckpoint(
            f"checkpoint {path} cannot be read: {e}. The plugin cannot tell which claims it prepared. "
            f"Move the file away (mv {path} {path}.corrupt) and restart the plugin: the kubelet will "
            "prepare running pods' claims again; check the GPUs for leftover MIG partitions."
        ) from e
