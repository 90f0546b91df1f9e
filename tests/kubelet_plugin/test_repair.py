"""Start-up repair against FakeHardware: reboot, interrupted prepares and unprepares, unowned leftovers."""

from __future__ import annotations

import json

from dra_driver.cdi.atomic import TEMP_SUFFIX
from kubelet_plugin.checkpoint import Checkpoint
from kubelet_plugin.hardware import EXCLUSIVE_PROCESS, GpuInstance
from kubelet_plugin.records import MigPartition
from kubelet_plugin.repair import repair
from tests.kubelet_plugin.conftest import DRIVER, Node, claim, time_slicing

MIG_0 = "gpu-0-mig-1g-5gb-0"
MIG_1 = "gpu-1-mig-3g-20gb-4"


def _checkpoint(node: Node) -> Checkpoint:
    return Checkpoint.load(node.root / "checkpoint.json", node.boot)


def test_after_a_reboot_completed_claims_are_prepared_again_at_the_same_placements(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0, MIG_1]))
    node.driver().prepare([ref])
    before = dict(node.hardware.partitions)
    (spec,) = node.cdi_dir.glob("*.json")
    old_text = spec.read_text()
    node.hardware.reboot()  # MIG partitions do not survive a reboot
    node.boot = "boot-2"
    report = repair(node.driver(), [0, 1])
    assert report.reprepared == 1 and report.partitions_destroyed == 0 and report.specs_removed == 0
    assert node.hardware.partitions == before  # same GPU instances, same placements
    assert node.recorded() == {"u1": "PrepareCompleted"} and not _checkpoint(node).boot_changed
    new_text = spec.read_text()
    assert new_text != old_text and "MIG-fake-0-1-3" in new_text  # the third MIG device made


def test_a_claim_that_cannot_be_prepared_again_after_a_reboot_is_dropped(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0, MIG_1]))
    node.driver().prepare([ref])
    node.hardware.reboot()
    node.hardware.fail_apply(2)
    node.boot = "boot-2"
    report = repair(node.driver(), [0, 1])
    assert report.reprepared == 0
    assert node.hardware.partitions == {} and node.specs() == [] and node.recorded() == {}


def test_an_interrupted_prepare_is_rolled_back(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0, MIG_1]))
    node.driver().prepare([ref])
    ckpt = _checkpoint(node)
    done = ckpt.claims()["u1"].devices
    ckpt.remove("u1")
    ckpt.start(ref, done)  # the plugin died after creating both partitions, before completing
    report = repair(node.driver(), [0, 1])
    assert report.rolled_back == 1
    assert node.hardware.partitions == {} and node.specs() == [] and node.recorded() == {}


def test_an_interrupted_unprepare_is_finished(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0, MIG_1]))
    node.driver().prepare([ref])
    ckpt = _checkpoint(node)
    ckpt.start_unprepare("u1", ckpt.claims()["u1"].devices[:1])  # died after undoing MIG_1, spec still there
    del node.hardware.partitions[(1, 1)]
    report = repair(node.driver(), [0, 1])
    assert report.unprepares_finished == 1 and report.partitions_destroyed == 0
    assert node.hardware.partitions == {} and node.specs() == [] and node.recorded() == {}


def test_an_unprepare_the_gpu_still_refuses_at_start_up_waits_for_the_rescan(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    node.driver().prepare([ref])
    node.hardware.lose(0)
    node.drivers[-1].unprepare([ref])
    driver = node.driver()
    report = repair(driver, [1])  # GPU 0 is lost, so not in the partitioned GPUs
    assert report.unprepares_finished == 0
    assert node.recorded() == {"u1": "UnprepareStarted"} and len(node.hardware.partitions) == 1
    node.hardware.restore(0)
    assert driver.retry_pending_unprepares() == 1
    assert node.hardware.partitions == {} and node.recorded() == {}


def test_partitions_no_claim_owns_are_destroyed_on_dynamically_partitioned_gpus_only(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    node.driver().prepare([ref])
    node.hardware.partitions[(0, 5)] = GpuInstance(5, "1g.5gb", 3)  # left by a crash
    node.hardware.partitions[(2, 1)] = GpuInstance(1, "7g.40gb", 0)  # static MIG: the admin's
    report = repair(node.driver(), [0, 1])
    assert report.partitions_destroyed == 1
    assert sorted(node.hardware.partitions) == [(0, 1), (2, 1)]


def test_a_partition_of_a_pending_undo_is_not_unowned(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    node.driver().prepare([ref])
    node.hardware.lose(0)
    node.drivers[-1].unprepare([ref])
    node.hardware.fail_undo(1)  # the GPU is back, but the undo at start-up fails once more
    node.hardware.restore(0)
    report = repair(node.driver(), [0])
    assert report.partitions_destroyed == 0 and list(node.hardware.partitions) == [(0, 1)]
    (left,) = _checkpoint(node).claims()["u1"].devices
    assert isinstance(left.hardware, MigPartition) and left.hardware.gpu_instance_id == 1


def test_orphan_cdi_specs_and_stale_temporary_files_are_removed(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    node.driver().prepare([ref])
    orphan = node.cdi_dir / f"{DRIVER}-claim_gone.json"
    orphan.write_text(json.dumps({"cdiVersion": "0.5.0"}))
    foreign = node.cdi_dir / "vendor.example.com-nic.json"
    foreign.write_text("{}")
    temp = node.cdi_dir / f".{DRIVER}-claim_u2.json.abc{TEMP_SUFFIX}"  # a write cut short by a crash
    temp.write_text("{")
    report = repair(node.driver(), [0])
    assert report.specs_removed == 1
    assert node.specs() == sorted([f"{DRIVER}-claim_u1.json", foreign.name])
    assert not temp.exists()


def test_time_slice_intervals_no_claim_uses_are_reset(node: Node) -> None:
    ref = node.api.add(claim("u1", ["gpu-0-ts-0"], config=time_slicing("Short")))
    node.driver().prepare([ref])
    gpu0, gpu1 = node.inventory.gpus[0].uuid, node.inventory.gpus[1].uuid
    node.hardware.intervals[gpu1] = "Long"  # its last claim went away mid-unprepare
    repair(node.driver(), [])
    assert node.hardware.intervals == {gpu0: "Short"}


def test_mps_daemons_and_compute_modes_are_brought_back_in_line_with_the_claims(node: Node) -> None:
    mps = [
        {
            "source": "FromClaim",
            "requests": [],
            "opaque": {
                "driver": DRIVER,
                "parameters": {
                    "apiVersion": "gpu.dra-driver.dev/v1alpha1",
                    "kind": "GpuConfig",
                    "sharing": {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 25}},
                },
            },
        }
    ]
    ref = node.api.add(claim("u1", ["gpu-0-shared"], config=mps))
    node.driver().prepare([ref])
    owned, orphan = str(node.root / "mps" / "gpu-0"), str(node.root / "mps" / "gpu-1")
    node.hardware.kill_daemon(owned)  # died while the plugin was down
    node.hardware.mps.add(orphan)  # left by a claim the checkpoint no longer has
    node.hardware.compute_modes[1] = EXCLUSIVE_PROCESS
    report = repair(node.driver(), [])
    assert (report.mps_started, report.mps_stopped, report.settings_reset) == (1, 1, 1)
    assert node.hardware.mps == {owned} and node.hardware.dead == set()
    assert node.hardware.compute_modes == {0: EXCLUSIVE_PROCESS}


def test_settings_that_cannot_be_read_are_left_alone(node: Node) -> None:
    node.hardware.intervals[node.inventory.gpus[0].uuid] = "unknown"  # e.g. no nvidia-smi
    report = repair(node.driver(), [])
    assert report.settings_reset == 0 and not any(c.startswith("interval") for c in node.hardware.calls)
