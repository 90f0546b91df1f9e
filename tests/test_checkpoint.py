"""The plugin checkpoint: two phases, durable atomic writes, every older version read, corruption reported."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from dra_driver.kubeletplugin.protocol import ClaimRef, PreparedDevice
from kubelet_plugin import checkpoint_slots
from kubelet_plugin.checkpoint import (
    Checkpoint,
    CorruptCheckpoint,
    DeviceRecord,
    MigPartition,
    MpsSettings,
    SharedGpu,
    TimeSliceReplica,
    WholeGpu,
    durable_slots,
    read_boot_id,
    volatile_slots,
)
from kubelet_plugin.checkpoint_slots import Slots, unframe

BOOT = "2f0e9b6c-1111-4c1e-9f00-000000000001"
NEXT_BOOT = "2f0e9b6c-2222-4c1e-9f00-000000000002"
CLAIM = ClaimRef("team-a", "uid-1", "train")
GPU_UUID = "GPU-0a1b2c3d-0000-0000-0000-000000000000"

WHOLE = DeviceRecord(("gpu",), "node-a", "gpu-0", WholeGpu(GPU_UUID, 0), ("k8s.gpu.dra-driver.dev/gpu=uid-1-gpu-0",))
MIG_PLANNED = DeviceRecord(("mig",), "node-a", "gpu-1-mig-1g.5gb-3", MigPartition(GPU_UUID, 1, "1g.5gb", 3, 1))
MIG_DONE = DeviceRecord(
    ("mig",),
    "node-a",
    "gpu-1-mig-1g.5gb-3",
    MigPartition(GPU_UUID, 1, "1g.5gb", 3, 1, 9, 0, "MIG-5c3a", created=True),
    ("k8s.gpu.dra-driver.dev/gpu=uid-1-gpu-1-mig-1g.5gb-3",),
    mps=MpsSettings("mps-uid-1", "/run/mps/uid-1", 50, (("0", 1 << 30), ("MIG-5c3a", 2 << 30))),
)
REPLICA = DeviceRecord(("ts",), "node-a", "gpu-2-ts-1", TimeSliceReplica(GPU_UUID, 2, "Short"), ("k=1",))
SHARED = DeviceRecord(("shared",), "node-a", "gpu-3", SharedGpu(GPU_UUID, 3), ("k=2",), share_id="0a1b")


def load(path: Path, boot: str = BOOT) -> Checkpoint:
    return Checkpoint.load(path, boot_id=boot)


def newest(slots: Slots) -> dict[str, Any]:
    """The newest whole document of a pair of slots, as JSON."""
    files = [p.read_bytes() for p in slots.paths if p.exists()]
    docs = [json.loads(unframe(raw)) for raw in files if raw]
    return max(docs, key=lambda d: d["generation"])


def test_missing_file_is_an_empty_checkpoint_of_this_boot(tmp_path: Path) -> None:
    cp = load(tmp_path / "checkpoint.json")
    assert cp.claims() == {}
    assert cp.boot_id == BOOT and not cp.boot_changed
    assert not (tmp_path / "checkpoint.json").exists()


def test_started_claim_is_on_disk_before_start_returns(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    load(path).start(CLAIM, (MIG_PLANNED,))
    record = load(path).claims()["uid-1"]
    assert (record.claim, record.state, record.devices, record.cdi_spec) == (
        CLAIM,
        "PrepareStarted",
        (MIG_PLANNED,),
        None,
    )


def test_completed_claim_reads_back_with_every_device_kind(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    cp = load(path)
    cp.start(CLAIM, (MIG_PLANNED,))
    cp.progress("uid-1", (MIG_DONE,))
    assert load(path).claims()["uid-1"].devices == (MIG_DONE,)
    cp.complete("uid-1", (WHOLE, MIG_DONE, REPLICA, SHARED), "k8s.gpu.dra-driver.dev-gpu_uid-1.json")
    again = load(path)
    assert again.claims() == cp.claims()
    record = again.claims()["uid-1"]
    assert record.state == "PrepareCompleted"
    assert record.devices == (WHOLE, MIG_DONE, REPLICA, SHARED)
    assert record.cdi_spec == "k8s.gpu.dra-driver.dev-gpu_uid-1.json"


def test_document_is_version_3_with_generation_boot_id_and_named_states(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    cp = load(path)
    cp.start(CLAIM)
    cp.complete("uid-1", (SHARED,), "spec.json")
    doc = newest(durable_slots(path))
    assert doc == {
        "version": 3,
        "generation": 2,
        "bootID": BOOT,
        "claims": {
            "uid-1": {
                "namespace": "team-a",
                "name": "train",
                "state": "PrepareCompleted",
                "devices": [
                    {
                        "requestNames": ["shared"],
                        "pool": "node-a",
                        "device": "gpu-3",
                        "cdiDeviceIDs": ["k=2"],
                        "shareID": "0a1b",
                        "shared": {"gpuUUID": GPU_UUID, "gpuIndex": 3},
                    }
                ],
                "cdiSpec": "spec.json",
            }
        },
    }
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {0o600}


def test_complete_needs_a_started_claim(tmp_path: Path) -> None:
    cp = load(tmp_path / "checkpoint.json")
    with pytest.raises(ValueError, match="not recorded: call start"):
        cp.complete("uid-1", (WHOLE,), None)
    cp.start(CLAIM)
    cp.complete("uid-1", (WHOLE,), None)
    with pytest.raises(ValueError, match="PrepareCompleted"):
        cp.progress("uid-1", ())


def test_a_claim_being_undone_reads_back_with_what_is_left_to_undo(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    cp = load(path)
    cp.start(CLAIM, (MIG_PLANNED,))
    cp.complete("uid-1", (WHOLE, MIG_DONE), "spec.json")
    cp.start_unprepare("uid-1", (WHOLE, MIG_DONE))
    cp.unprepare_progress("uid-1", (WHOLE,))
    record = load(path).claims()["uid-1"]
    assert (record.state, record.devices, record.cdi_spec) == ("UnprepareStarted", (WHOLE,), None)
    # work in flight is in the volatile copy, the durable one still says what the kubelet was told
    assert newest(volatile_slots(path))["claims"]["uid-1"]["state"] == "UnprepareStarted"
    assert newest(durable_slots(path))["claims"]["uid-1"]["state"] == "PrepareCompleted"


def test_undo_progress_needs_a_claim_being_undone(tmp_path: Path) -> None:
    cp = load(tmp_path / "checkpoint.json")
    with pytest.raises(ValueError, match="not recorded: there is nothing to undo"):
        cp.start_unprepare("uid-1", ())
    cp.start(CLAIM, (WHOLE,))
    with pytest.raises(ValueError, match="is PrepareStarted: call start_unprepare"):
        cp.unprepare_progress("uid-1", ())
    cp.start_unprepare("uid-1", (WHOLE,))
    with pytest.raises(ValueError, match="is UnprepareStarted: call start"):
        cp.progress("uid-1", ())


def test_starting_a_recorded_claim_again_is_refused_so_its_record_is_not_lost(tmp_path: Path) -> None:
    cp = load(tmp_path / "checkpoint.json")
    cp.start(CLAIM, (MIG_PLANNED,))
    with pytest.raises(ValueError, match="already PrepareStarted"):
        cp.start(CLAIM, ())
    assert cp.claims()["uid-1"].devices == (MIG_PLANNED,)


def test_remove_is_idempotent_and_durable(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    cp = load(path)
    cp.remove("never-seen")
    assert list(tmp_path.iterdir()) == []
    cp.start(CLAIM)
    cp.remove("uid-1")
    cp.remove("uid-1")
    assert load(path).claims() == {}


def test_failed_write_changes_neither_file_nor_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "checkpoint.json"
    cp = load(path)
    cp.start(CLAIM)
    cp.complete("uid-1", (WHOLE,), "spec.json")
    cp.start_unprepare("uid-1", (WHOLE,))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_slots.os, "pwrite", full_disk)
    with pytest.raises(OSError):
        cp.remove("uid-1")  # durable
    with pytest.raises(OSError):
        cp.unprepare_progress("uid-1", ())  # volatile
    monkeypatch.undo()
    # a failed write may leave the slot it went to created, but empty: the others are untouched
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {k: v for k, v in after.items() if v} == before
    assert cp.claims()["uid-1"].state == "UnprepareStarted"
    assert load(path).claims() == cp.claims()


def test_new_boot_is_noticed_until_repair_acknowledges_it(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    load(path).start(CLAIM)
    after_reboot = load(path, NEXT_BOOT)
    assert after_reboot.boot_changed and after_reboot.boot_id == BOOT
    after_reboot.remove("other")  # unrelated writes keep the recorded boot
    assert load(path, NEXT_BOOT).boot_changed
    after_reboot.acknowledge_boot()
    assert not load(path, NEXT_BOOT).boot_changed


def test_concurrent_changes_are_all_recorded(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    cp = load(path)

    def prepare(i: int) -> None:
        cp.start(ClaimRef("ns", f"uid-{i}", f"c{i}"))
        cp.complete(f"uid-{i}", (WHOLE,), f"spec-{i}.json")

    threads = [threading.Thread(target=prepare, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(load(path).claims()) == sorted(f"uid-{i}" for i in range(8))


def test_device_record_gives_the_kubelet_its_answer() -> None:
    assert SHARED.to_kubelet() == PreparedDevice(("shared",), "node-a", "gpu-3", ("k=2",), "0a1b")


V1 = {
    "version": 1,
    "claims": {
        "uid-1": {
            "namespace": "team-a",
            "name": "train",
            "prepared": True,
            "devices": [
                {
                    "requestNames": ["gpu"],
                    "pool": "node-a",
                    "device": "gpu-0",
                    "cdiDeviceIDs": ["k8s.gpu.dra-driver.dev/gpu=uid-1-gpu-0"],
                    "gpuUUID": GPU_UUID,
                    "gpuIndex": 0,
                }
            ],
            "cdiSpec": "k8s.gpu.dra-driver.dev-gpu_uid-1.json",
        },
        "uid-2": {"namespace": "team-b", "name": "half", "prepared": False, "devices": []},
    },
}


def test_version_1_is_migrated_on_read(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(V1))
    cp = load(path)
    one, two = cp.claims()["uid-1"], cp.claims()["uid-2"]
    assert (one.claim, one.state, one.cdi_spec) == (CLAIM, "PrepareCompleted", "k8s.gpu.dra-driver.dev-gpu_uid-1.json")
    assert one.devices == (WHOLE,)
    assert (two.claim, two.state, two.devices, two.cdi_spec) == (
        ClaimRef("team-b", "uid-2", "half"),
        "PrepareStarted",
        (),
        None,
    )
    assert cp.boot_id is None and cp.boot_changed  # version 1 did not know its boot: repair must check


def test_migrated_checkpoint_is_saved_as_version_3(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(V1))
    cp = load(path)
    cp.save()
    doc = newest(durable_slots(path))
    assert doc["version"] == 3 and doc["bootID"] is None and doc["generation"] == 1
    assert doc["claims"]["uid-1"]["state"] == "PrepareCompleted"
    assert load(path).claims() == cp.claims()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "not valid JSON"),
        (b'{"version": 2, "bootID": "x", "claims": {"uid-1": {"namesp', "not valid JSON"),
        (b"[]", "must be an object"),
        (b'{"bootID": "x", "claims": {}}', "version: must be an integer"),
        (b'{"version": 4, "claims": {}}', "written by a newer plugin"),
        (b'{"version": 3, "generation": -1, "bootID": "x", "claims": {}}', "generation: must be an integer (>= 0)"),
        (b'{"version": 2, "bootID": "x", "claims": {}, "extra": 1}', "extra: unknown field"),
        (b'{"version": 2, "bootID": "x", "bootID": "y", "claims": {}}', "bootID: duplicate key"),
        (b'{"version": 2, "bootID": 5, "claims": {}}', "bootID: must be a string"),
        (
            b'{"version": 2, "bootID": "x", "claims": {"u": {"namespace": "n", "name": "c", "state": "Prepared",'
            b' "devices": [], "cdiSpec": null}}}',
            "claims['u'].state: unknown state 'Prepared'",
        ),
        (
            b'{"version": 2, "bootID": "x", "claims": {"u": {"namespace": "n", "name": "c", "state": "PrepareStarted",'
            b' "devices": [{"requestNames": [], "pool": "p", "device": "d", "cdiDeviceIDs": [], "shareID": null}],'
            b' "cdiSpec": null}}}',
            "claims['u'].devices[0]: needs exactly one of gpu, mig, timeslice, shared",
        ),
        (b'{"version": 1, "claims": {"u": {"namespace": "n", "name": "c", "prepared": "yes", "devices": []}}}',
         "claims['u'].prepared: must be a boolean"),
    ],
)  # fmt: skip
def test_unreadable_checkpoint_is_reported_with_what_to_do_and_left_in_place(
    tmp_path: Path, content: bytes, words: str
) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_bytes(content)
    with pytest.raises(CorruptCheckpoint) as e:
        load(path)
    assert words in str(e.value)
    assert f"mv {path} {path}.corrupt" in str(e.value)
    assert path.read_bytes() == content


def test_boot_id_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    boot_file = tmp_path / "boot_id"
    boot_file.write_text(BOOT + "\n")
    assert read_boot_id(boot_file) == BOOT


@pytest.mark.skipif(not Path("/proc/sys/kernel/random/boot_id").exists(), reason="needs Linux /proc")
def test_default_boot_id_is_this_machines(tmp_path: Path) -> None:
    assert (
        Checkpoint.load(tmp_path / "c.json").current_boot_id
        == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    )


def test_version_2_is_read_as_generation_0(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps({"version": 2, "bootID": BOOT, "claims": {}}))
    cp = load(path)
    assert cp.claims() == {} and not cp.boot_changed
    cp.start(CLAIM)  # volatile, generation 1: newer than the version-2 file
    assert load(path).claims()["uid-1"].state == "PrepareStarted"


def test_an_older_plugins_file_is_read_then_superseded_by_the_slots(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(V1))
    cp = load(path)
    cp.remove("uid-2")  # the first durable write: slots from now on
    assert not path.exists()
    assert sorted(load(path).claims()) == ["uid-1"]


def test_both_durable_slots_unreadable_is_corrupt_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    cp = load(path)
    cp.start(CLAIM)
    cp.complete("uid-1", (WHOLE,), None)
    cp.remove("uid-1")
    for slot in durable_slots(path).paths:
        slot.write_bytes(b"garbage")
    with pytest.raises(CorruptCheckpoint, match=r"neither holds a whole document.*mv .*durable-0"):
        load(path)


def test_one_durable_slot_cut_short_leaves_the_other(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    cp = load(path)
    cp.start(CLAIM)
    cp.complete("uid-1", (WHOLE,), None)  # generation 2: durable slot 0
    cp.save()  # 3: durable slot 1
    torn = durable_slots(path).paths[1]
    torn.write_bytes(torn.read_bytes()[:40])
    assert load(path).claims()["uid-1"].state == "PrepareCompleted"
