"""The plugin's crash-safe checkpoint: which claims it has prepared, and what it did to the hardware for each.

A versioned JSON document (``checkpoint_json``), replaced atomically (temp file + fsync + rename + fsync dir)
on every change, and held in memory only once it is durable.

Two phases: ``start`` records a claim as ``PrepareStarted`` (with what is about to be done) before any side
effect; ``complete`` records the prepared devices and CDI spec as ``PrepareCompleted``. A claim still
``PrepareStarted`` at start-up was interrupted and must be rolled back or redone. Undoing a claim (unprepare,
or the roll-back of a failed prepare) is recorded too: ``start_unprepare`` marks it ``UnprepareStarted``
with the devices still to undo, ``unprepare_progress`` shrinks that list as each is undone, ``remove``
forgets the claim once nothing is left. A claim still ``UnprepareStarted`` was interrupted, or its
hardware did not answer: the undo is retried. ``bootID`` is the boot the recorded hardware state belongs
to: MIG partitions, time-slice settings and MPS daemons do not survive a reboot, so ``boot_changed`` tells
start-up repair to check everything against the hardware; ``acknowledge_boot`` adopts the current boot
once repair is done.

Every version ever written is read (version 1 is migrated on load). A document that cannot be read is
never dropped silently: ``CorruptCheckpoint`` says what is wrong and what to do.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from api.errors import ConfigError
from dra_driver.cdi.atomic import write_atomically
from dra_driver.errors import FatalError
from dra_driver.kubeletplugin.protocol import ClaimRef
from kubelet_plugin.checkpoint_json import document_json, read_document
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


class CorruptCheckpoint(FatalError):
    """The checkpoint file exists but cannot be read; the plugin must not guess which claims are prepared."""


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
        # compact: indent= drops Python's json to its pure-Python encoder (issue 14: 460k calls per prepare run)
        write_atomically(self.path, (json.dumps(document_json(doc), separators=(",", ":")) + "\n").encode(), 0o600)
