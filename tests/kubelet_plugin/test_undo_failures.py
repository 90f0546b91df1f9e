"""Hardware that fails while a claim is undone: nothing is forgotten, the undo is retried until it finishes."""

from __future__ import annotations

from kubelet_plugin.records import MigPartition
from tests.kubelet_plugin.conftest import Node, claim

MIG_0 = "gpu-0-mig-1g-5gb-0"
MIG_1 = "gpu-1-mig-1g-5gb-0"


def test_unprepare_on_a_lost_gpu_keeps_the_claim_and_says_it_will_retry(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    driver = node.driver()
    driver.prepare([ref])
    node.hardware.lose(0)
    error = driver.unprepare([ref])["u1"]
    assert error.startswith(
        "GPU 0 did not answer while destroying MIG partition 1g.5gb at slice 0 (GPU instance 1) of claim ns/claim-u1"
    )
    assert "GPU is lost" in error and error.endswith("will retry at the next unprepare and hardware re-scan")
    assert node.recorded() == {"u1": "UnprepareStarted"}
    assert len(node.hardware.partitions) == 1
    assert node.specs() == []  # the spec goes first: no container may use the device any more


def test_rescan_finishes_the_unprepare_once_the_gpu_returns(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    driver = node.driver()
    driver.prepare([ref])
    node.hardware.lose(0)
    driver.unprepare([ref])
    assert driver.retry_pending_unprepares() == 0  # still lost: still pending
    assert node.recorded() == {"u1": "UnprepareStarted"}
    node.hardware.restore(0)
    assert driver.retry_pending_unprepares() == 1
    assert node.hardware.partitions == {} and node.specs() == [] and node.recorded() == {}
    assert driver.unprepare([ref]) == {"u1": ""}  # the kubelet's retry then has nothing left to do


def test_the_kubelets_retry_finishes_the_unprepare_once_the_gpu_returns(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    driver = node.driver()
    driver.prepare([ref])
    node.hardware.lose(0)
    assert driver.unprepare([ref])["u1"] != ""
    assert driver.unprepare([ref])["u1"] != ""  # retried while still lost: still an error, still recorded
    node.hardware.restore(0)
    assert driver.unprepare([ref]) == {"u1": ""}
    assert node.hardware.partitions == {} and node.recorded() == {}


def test_a_device_already_undone_is_never_undone_again(node: Node) -> None:
    """GPU 1's partition is destroyed before GPU 0 fails; GPU 1 then gives the same GPU instance id to
    another claim, which the retry must leave alone."""
    ref = node.api.add(claim("u1", [MIG_0, MIG_1]))
    driver = node.driver()
    driver.prepare([ref])
    node.hardware.lose(0)
    driver.unprepare([ref])  # reverse order: MIG_1 (GPU 1) undone, then GPU 0 does not answer
    (left,) = driver.checkpoint.claims()["u1"].devices
    assert left.device == MIG_0
    other = node.api.add(claim("u2", [MIG_1]))
    assert driver.prepare([other])["u2"].error == ""
    (theirs,) = driver.checkpoint.claims()["u2"].devices
    assert isinstance(theirs.hardware, MigPartition) and theirs.hardware.gpu_instance_id == 1  # reused id
    node.hardware.restore(0)
    assert driver.retry_pending_unprepares() == 1
    assert list(node.hardware.partitions) == [(1, 1)]  # u2's partition survived
    assert node.recorded() == {"u2": "PrepareCompleted"}


def test_a_roll_back_the_gpu_refuses_stays_recorded_and_is_finished_later(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0, MIG_1]))
    node.hardware.fail_apply(2)
    node.hardware.fail_undo(1)
    driver = node.driver()
    error = driver.prepare([ref])["u1"].error
    assert "injected failure of apply" in error  # the kubelet hears why the prepare failed
    assert node.recorded() == {"u1": "UnprepareStarted"}
    (left,) = driver.checkpoint.claims()["u1"].devices
    assert left.device == MIG_0  # only what was applied
    assert driver.retry_pending_unprepares() == 1
    assert node.hardware.partitions == {} and node.recorded() == {}


def test_prepare_of_a_claim_with_a_pending_undo_finishes_the_undo_first(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    driver = node.driver()
    driver.prepare([ref])
    node.hardware.lose(0)
    driver.unprepare([ref])
    assert "did not answer while destroying MIG partition" in driver.prepare([ref])["u1"].error
    node.hardware.restore(0)
    assert driver.prepare([ref])["u1"].error == ""
    assert len(node.hardware.partitions) == 1 and node.recorded() == {"u1": "PrepareCompleted"}
    assert len(node.specs()) == 1


def test_a_pending_undo_survives_a_restart(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    node.driver().prepare([ref])
    node.hardware.lose(0)
    node.drivers[-1].unprepare([ref])
    node.hardware.restore(0)
    restarted = node.driver()
    assert restarted.retry_pending_unprepares() == 1
    assert node.hardware.partitions == {} and node.recorded() == {}
