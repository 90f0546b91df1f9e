"""Durable writes per claim (issue 14): counted by wrapping ``os.fsync``, files and directories apart.

Targets: a whole-GPU prepare at most 2 file fsyncs, an unprepare at most 1, one directory fsync per claim
call (measured: 1 and 1, and a directory fsync only the first time each durable slot is written). And what the fewer fsyncs rest on: a killed plugin's successor reads the volatile records, a write cut
short leaves the other volatile slot in charge, and a volatile copy lost with the page cache falls back to
the durable one.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from kubelet_plugin.checkpoint import Checkpoint
from kubelet_plugin.checkpoint_slots import frame
from kubelet_plugin.repair import repair
from tests.kubelet_plugin.conftest import Node, claim

MIG_0 = "gpu-0-mig-1g-5gb-0"


@dataclass
class Fsyncs:
    files: int = 0
    directories: int = 0
    paths: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.files = self.directories = 0
        self.paths.clear()


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fsyncs]:
    counted = Fsyncs()
    real = os.fsync

    def counting(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            counted.directories += 1
        else:
            counted.files += 1
        counted.paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    yield counted


def test_whole_gpu_prepare_and_unprepare_fsync_once_each_plus_one_directory(node: Node, fsyncs: Fsyncs) -> None:
    driver = node.driver()
    ref = node.api.add(claim("u1", ["gpu-3"]))
    fsyncs.reset()
    assert driver.prepare([ref])["u1"].error == ""
    assert (fsyncs.files, fsyncs.directories) == (1, 1), fsyncs.paths
    assert node.recorded() == {"u1": "PrepareCompleted"}
    fsyncs.reset()
    assert driver.unprepare([ref]) == {"u1": ""}
    assert (fsyncs.files, fsyncs.directories) == (1, 1), fsyncs.paths
    assert node.recorded() == {} and node.specs() == []
    # each durable slot's name is synced once per process: later claims need no directory fsync at all
    again = node.api.add(claim("u2", ["gpu-4"]))
    fsyncs.reset()
    assert driver.prepare([again])["u2"].error == "" and driver.unprepare([again]) == {"u2": ""}
    assert (fsyncs.files, fsyncs.directories) == (2, 0), fsyncs.paths


def test_mig_prepare_is_durable_once_too(node: Node, fsyncs: Fsyncs) -> None:
    driver = node.driver()
    ref = node.api.add(claim("u1", [MIG_0]))
    fsyncs.reset()
    assert driver.prepare([ref])["u1"].error == ""
    assert (fsyncs.files, fsyncs.directories) == (1, 1), fsyncs.paths
    fsyncs.reset()
    assert driver.unprepare([ref]) == {"u1": ""}
    assert (fsyncs.files, fsyncs.directories) == (1, 1), fsyncs.paths


def test_a_whole_gpu_is_recorded_once_after_its_spec_and_a_kill_in_between_leaves_an_orphan_repair_removes(
    plain_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim that touches no GPU has one record, written after its CDI spec, its only side effect."""
    ref = plain_node.api.add(claim("u1", ["gpu-3"]))
    killed = plain_node.root / "killed"
    real = Checkpoint.prepared

    def copy_then_record(self: Checkpoint, *args: object) -> None:  # the files a SIGKILL at this moment leaves
        shutil.copytree(plain_node.root, killed, ignore=shutil.ignore_patterns("killed", "driver-root"))
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Checkpoint, "prepared", copy_then_record)
    driver = plain_node.driver()
    assert driver.prepare([ref])["u1"].error == ""
    assert plain_node.recorded() == {"u1": "PrepareCompleted"}
    assert not any(p.exists() for p in driver.checkpoint.volatile.paths), "nothing recorded before the spec"
    successor = Node(killed, plain_node.inventory, driver_files=plain_node.driver_files)
    assert len(successor.specs()) == 1 and successor.recorded() == {}
    assert repair(successor.driver(), []).specs_removed == 1
    assert successor.specs() == [] and successor.recorded() == {}


def test_a_files_only_claim_whose_record_fails_leaves_no_spec(
    plain_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Checkpoint, "prepared", full)
    ref = plain_node.api.add(claim("u1", ["gpu-3"]))
    assert "No space left on device" in plain_node.driver().prepare([ref])["u1"].error
    assert plain_node.specs() == [] and plain_node.recorded() == {}


def test_a_record_whose_fsync_fails_is_written_over_so_a_restart_does_not_see_it(
    plain_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record reached the slot before its fsync failed: the roll-back writes the checkpoint again without it."""
    ref = plain_node.api.add(claim("u1", ["gpu-3"]))
    driver = plain_node.driver()
    real, failed = os.fsync, []

    def refused_once(fd: int) -> None:
        if not failed and ".durable-" in os.readlink(f"/proc/self/fd/{fd}"):
            failed.append(fd)
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fsync", refused_once)
    assert "Input/output error" in driver.prepare([ref])["u1"].error and failed
    assert plain_node.recorded() == {} and plain_node.specs() == []
    assert driver.prepare([ref])["u1"].error == ""  # the kubelet's retry
    assert plain_node.recorded() == {"u1": "PrepareCompleted"} and len(plain_node.specs()) == 1


def test_a_files_only_prepare_of_a_recorded_claim_is_refused_before_its_spec_is_touched(plain_node: Node) -> None:
    driver = plain_node.driver()
    ref = plain_node.api.add(claim("u1", ["gpu-3"]))
    assert driver.prepare([ref])["u1"].error == ""
    spec = plain_node.cdi_dir / plain_node.specs()[0]
    before = spec.read_bytes()
    record = driver.checkpoint.get("u1")
    assert record is not None
    with pytest.raises(ValueError, match="already PrepareCompleted"):
        driver.transaction.prepare(ref, record.devices, {g.index: g.minor for g in plain_node.inventory.gpus})
    assert spec.read_bytes() == before and plain_node.recorded() == {"u1": "PrepareCompleted"}


def test_a_killed_plugins_successor_reads_the_volatile_records(node: Node) -> None:
    # what a SIGKILL between start and complete leaves: the page cache keeps the volatile copy
    cp = node.driver().checkpoint
    ref = node.api.add(claim("u1", [MIG_0]))
    cp.start(ref)
    assert node.recorded() == {"u1": "PrepareStarted"}
    assert not cp.path.exists()  # nothing durable yet
    cp.complete("u1", (), None)
    cp.start_unprepare("u1", ())
    assert node.recorded() == {"u1": "UnprepareStarted"}
    cp.remove("u1")
    assert node.recorded() == {}


def test_a_volatile_copy_lost_with_the_page_cache_falls_back_to_the_durable_one(node: Node) -> None:
    cp = node.driver().checkpoint
    cp.start(node.api.add(claim("u1", ["gpu-1"])))  # generation 1: slot 1
    cp.complete("u1", (), None)  # 2: durable
    cp.start(node.api.add(claim("u2", ["gpu-2"])))  # 3: slot 1
    assert node.recorded() == {"u1": "PrepareCompleted", "u2": "PrepareStarted"}
    # a power loss can leave a never-synced slot empty, partial or zeroed
    for damage in (b"", b"87 1234abcd\n{", b"\0" * 64):
        cp.volatile.paths[1].write_bytes(damage)
        assert node.recorded() == {"u1": "PrepareCompleted"}


def test_a_write_cut_short_leaves_the_other_slot_in_charge(node: Node) -> None:
    cp = node.driver().checkpoint
    cp.start(node.api.add(claim("u1", ["gpu-1"])))  # generation 1: volatile slot 0
    cp.start(node.api.add(claim("u2", ["gpu-2"])))  # 2: slot 1 (never the slot of the newest)
    assert [p.exists() for p in cp.volatile.paths] == [True, True]
    # killed half-way through writing generation 3, which goes to slot 0: its header promises more than is there
    whole = frame(b'{"version":3,"generation":3,"bootID":null,"claims":{}}\n')
    cp.volatile.paths[0].write_bytes(whole[: len(whole) // 2])
    assert node.recorded() == {"u1": "PrepareStarted", "u2": "PrepareStarted"}
    # a restarted plugin goes on from there, and a shorter document after a longer one is read whole
    again = Checkpoint.load(cp.path, node.boot)
    again.remove("u1")  # 3: durable
    again.start_unprepare("u2", ())  # 4: volatile slot 0 (slot 1 holds generation 2)
    again.remove("u2")  # 5: durable
    again.start(node.api.add(claim("u3", ["gpu-3"])))  # 6: volatile slot 1, shorter than generation 2 was
    assert node.recorded() == {"u3": "PrepareStarted"}


def test_generation_survives_a_restart_so_new_volatile_records_win(node: Node) -> None:
    first = node.driver().checkpoint
    first.start(node.api.add(claim("u1", ["gpu-1"])))
    first.complete("u1", (), None)
    again = Checkpoint.load(first.path, node.boot)
    again.start(node.api.add(claim("u2", ["gpu-2"])))
    assert node.recorded() == {"u1": "PrepareCompleted", "u2": "PrepareStarted"}


def test_stale_temporary_files_of_the_checkpoint_are_removed(node: Node) -> None:
    cp = node.driver().checkpoint
    cp.path.parent.mkdir(parents=True, exist_ok=True)
    stale = [cp.path.parent / ".checkpoint.json.x1.tmp", cp.path.parent / ".checkpoint.json.x2.tmp"]
    for path in stale:
        path.write_text("{")
    other = cp.path.parent / ".other.tmp"
    other.write_text("{")
    assert cp.remove_stale_temp_files() == sorted(stale)
    assert not any(p.exists() for p in stale) and other.exists()
