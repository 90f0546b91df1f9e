"""GpuDriver: prepare and unprepare as one transaction each, against FakeHardware and a real checkpoint."""

from __future__ import annotations

import errno
import threading
import time
from typing import Any

import pytest

from dra_driver import cdi
from dra_driver.k8s import MERGE_PATCH, ApiError
from dra_driver.kubeletplugin.protocol import ClaimRef
from dra_driver.kubeletplugin.server import Answered
from e2e.wait import until
from kubelet_plugin.hardware import EXCLUSIVE_PROCESS
from kubelet_plugin.records import MigPartition
from tests.kubelet_plugin.conftest import DRIVER, NODE, Node, claim, time_slicing

MIG_0 = "gpu-0-mig-1g-5gb-0"
MIG_1 = "gpu-1-mig-1g-5gb-0"
MIG_2 = "gpu-2-mig-2g-10gb-4"


def _mig_uuid(node: Node, uid: str) -> str:
    (device,) = [d for d in node.driver().checkpoint.claims()[uid].devices]
    assert isinstance(device.hardware, MigPartition) and device.hardware.mig_uuid is not None
    return device.hardware.mig_uuid


def test_mig_claim_gets_a_partition_a_spec_and_a_completed_record(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    (result,) = node.driver().prepare([ref]).values()
    assert result.error == ""
    (device,) = result.devices
    assert (device.device, device.pool, device.cdi_device_ids) == (MIG_0, NODE, (f"{DRIVER}/claim=u1-{MIG_0}",))
    assert [(gpu, p.profile, p.start) for (gpu, _), p in node.hardware.partitions.items()] == [(0, "1g.5gb", 0)]
    assert node.specs() == [f"{DRIVER}-claim_u1.json"]
    assert node.recorded() == {"u1": "PrepareCompleted"}


def test_prepared_claim_is_answered_from_the_checkpoint_without_touching_the_hardware(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0, MIG_1]))
    first = node.driver().prepare([ref])["u1"]
    calls = list(node.hardware.calls)
    node.api.claims.clear()  # not even read again
    again = node.driver().prepare([ref])["u1"]  # a restarted plugin, asked again by the kubelet
    assert again == first and again.error == ""
    assert node.hardware.calls == calls


@pytest.mark.parametrize("failing_apply", [1, 2, 3])
def test_failure_at_any_device_rolls_back_exactly_what_was_applied_in_reverse(node: Node, failing_apply: int) -> None:
    ref = node.api.add(claim("u1", [MIG_0, MIG_1, MIG_2]))
    node.hardware.fail_apply(failing_apply)
    result = node.driver().prepare([ref])["u1"]
    assert "injected failure of apply" in result.error
    applied = [MIG_0, MIG_1, MIG_2][: failing_apply - 1]
    assert node.hardware.calls[failing_apply:] == [f"undo {d}" for d in reversed(applied)]
    assert node.hardware.partitions == {} and node.specs() == [] and node.recorded() == {}


def test_failure_to_write_the_spec_rolls_back_every_device(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cdi, "write_spec", disk_full)
    ref = node.api.add(claim("u1", [MIG_0, MIG_1]))
    result = node.driver().prepare([ref])["u1"]
    assert "internal error (OSError: [Errno 28] No space left on device)" in result.error
    assert node.hardware.calls[-2:] == [f"undo {MIG_1}", f"undo {MIG_0}"]
    assert node.hardware.partitions == {} and node.recorded() == {}


def test_a_failed_claim_does_not_fail_the_others_of_the_same_call(node: Node) -> None:
    good, bad = node.api.add(claim("good", [MIG_0])), node.api.add(claim("bad", [MIG_1]))
    node.hardware.lose(1)
    results = node.driver().prepare([good, bad])
    assert results["good"].error == "" and results["good"].devices
    assert "GPU is lost" in results["bad"].error
    assert node.recorded() == {"good": "PrepareCompleted"}


def test_per_claim_errors_say_what_is_wrong(node: Node) -> None:
    foreign = node.api.add(claim("foreign", ["gpu-0"], driver="other.example.com"))
    bad = node.api.add(claim("bad", ["gpu-0-ts-0"], config=time_slicing("Sometimes")))
    gone = ClaimRef("ns", "gone", "claim-gone")
    results = node.driver().prepare([foreign, bad, gone])
    assert results["gone"].error == "claim ns/claim-gone not found: it was deleted"
    assert results["foreign"].error == (
        f"claim ns/claim-foreign has no devices allocated by driver {DRIVER}: "
        "its status.allocation names only other drivers, so this driver has nothing to prepare"
    )
    assert results["bad"].error.startswith("invalid configuration: ") and "Sometimes" in results["bad"].error


def test_a_busy_placement_is_rolled_back_and_reported_as_a_scheduling_matter(node: Node) -> None:
    first, second = node.api.add(claim("a", [MIG_0])), node.api.add(claim("b", [MIG_1, MIG_0]))
    driver = node.driver()
    driver.prepare([first])
    error = driver.prepare([second])["b"].error
    assert "placement 0 is busy" in error and error.endswith(
        "the scheduler will retry once the GPU's allocations are settled"
    )
    assert list(node.hardware.partitions) == [(0, 1)] and node.recorded() == {"a": "PrepareCompleted"}


def test_claim_without_devices_of_this_driver_is_refused_and_not_checkpointed(node: Node) -> None:
    ref = node.api.add(claim("u1", ["gpu-0"], driver="other.example.com"))
    result = node.driver().prepare([ref])["u1"]
    assert "has no devices allocated by driver gpu.dra-driver.dev" in result.error and result.devices == ()
    assert node.recorded() == {} and node.hardware.calls == [] and node.specs() == []


def test_device_uuids_are_merge_patched_into_status_keeping_other_drivers_entries(node: Node) -> None:
    theirs = {"driver": "nic.example.com", "pool": NODE, "device": "nic-0", "data": {"mac": "aa"}}
    ref = node.api.add(claim("u1", [MIG_0], status_devices=[theirs]))
    node.api.fail_patches.append(ApiError("PATCH", "/status", 409, '{"message": "the object has been modified"}'))
    driver = node.driver()
    driver.prepare([ref])
    driver.shutdown()  # waits for the status writer
    assert len(node.api.patches) == 2  # the conflict was retried
    path, body, content_type = node.api.patches[-1]
    assert path == "/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims/claim-u1/status"
    assert content_type == MERGE_PATCH
    mig_uuid = _mig_uuid(node, "u1")
    assert body == {
        "metadata": {"resourceVersion": "41"},
        "status": {"devices": [theirs, {"driver": DRIVER, "pool": NODE, "device": MIG_0, "data": {"uuid": mig_uuid}}]},
    }
    assert set(body["status"]) == {"devices"}  # never status.allocation


def test_the_status_write_uses_the_prepares_read_and_reads_again_only_after_a_conflict(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    reads: list[str] = []
    get = node.api.get
    node.api.get = lambda path: reads.append(path) or get(path)  # type: ignore[method-assign]
    driver = node.driver()
    driver.prepare([ref])
    driver.shutdown()  # waits for the status writer
    assert len(reads) == 1 and len(node.api.patches) == 1  # the prepare's GET only
    node.api.fail_patches.append(ApiError("PATCH", "/status", 409, '{"message": "the object has been modified"}'))
    driver = node.driver()
    driver.prepare([node.api.add(claim("u2", [MIG_1]))])
    driver.shutdown()
    assert len(reads) == 3 and len(node.api.patches) == 3  # the conflict: one fresh read, one more patch


def test_no_status_is_written_for_a_claim_unprepared_before_the_writes_turn(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    driver = node.driver()
    busy = threading.Event()
    for _ in range(2):  # both status writers busy
        driver._status_writer.submit(busy.wait, 30)
    driver.prepare([ref])
    driver.unprepare([ref])
    busy.set()
    driver.shutdown()
    assert node.api.patches == [] and node.api.replaces == []


def test_the_status_write_waits_until_the_prepares_answer_has_gone_out(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    driver = node.driver()
    answered = Answered()
    assert not driver.prepare([ref], answered=answered)["u1"].error
    time.sleep(0.3)  # the writer had time to write, had it not waited (this sleep is what is being measured)
    assert node.api.patches == []
    answered.set()  # the server's callback: the RPC ended
    until(lambda: node.api.patches, "the status write after the answer", timeout=10)
    driver.shutdown()
    assert len(node.api.patches) == 1


def test_no_status_is_written_when_device_status_is_off(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    driver = node.driver()
    driver.device_status = False  # --claim-device-status=false
    assert not driver.prepare([ref])["u1"].error
    driver.shutdown()
    assert node.api.patches == [] and node.api.replaces == []


def test_status_goes_back_with_a_put_where_the_server_refuses_the_patch_over_the_allocation(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0], config=[]))
    refused = '{"message": "status.allocation: Invalid value: null: field cannot be modified once set"}'
    node.api.fail_patches.append(ApiError("PATCH", "/status", 422, refused))
    driver = node.driver()
    driver.prepare([ref])
    driver.shutdown()
    ((path, body),) = node.api.replaces
    assert path == "/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims/claim-u1/status"
    assert body["status"]["allocation"] == claim("u1", [MIG_0])["status"]["allocation"]  # as read
    assert body["status"]["devices"] == [
        {"driver": DRIVER, "pool": NODE, "device": MIG_0, "data": {"uuid": _mig_uuid(node, "u1")}}
    ]


def test_status_is_not_written_when_the_server_refuses_it_for_another_reason(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    node.api.fail_patches.append(ApiError("PATCH", "/status", 403, '{"message": "forbidden"}'))
    driver = node.driver()
    assert driver.prepare([ref])["u1"].error == ""  # best effort: the prepare stands
    driver.shutdown()
    assert len(node.api.patches) == 1 and node.api.replaces == []


def test_time_slice_claims_set_the_interval_and_the_last_one_resets_it(node: Node) -> None:
    a = node.api.add(claim("a", ["gpu-0-ts-0"], config=time_slicing("Long")))
    b = node.api.add(claim("b", ["gpu-0-ts-1"], config=time_slicing("Long")))
    driver = node.driver()
    driver.prepare([a, b])
    gpu0 = node.inventory.gpus[0].uuid
    assert node.hardware.intervals == {gpu0: "Long"}
    assert driver.unprepare([a]) == {"a": ""}
    assert node.hardware.intervals == {gpu0: "Long"}  # b still uses it
    assert driver.unprepare([b]) == {"b": ""}
    assert node.hardware.intervals == {}


def test_unprepare_destroys_partitions_removes_the_spec_and_forgets_the_claim(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0, MIG_1]))
    driver = node.driver()
    driver.prepare([ref])
    assert driver.unprepare([ref]) == {"u1": ""}
    assert node.hardware.partitions == {} and node.specs() == [] and node.recorded() == {}
    assert node.hardware.calls[-2:] == [f"undo {MIG_1}", f"undo {MIG_0}"]
    assert driver.unprepare([ref]) == {"u1": ""}  # unknown by now: nothing to do


def test_prepare_of_an_interrupted_attempt_undoes_it_first(node: Node) -> None:
    ref = node.api.add(claim("u1", [MIG_0]))
    driver = node.driver()
    driver.prepare([ref])
    record = driver.checkpoint.claims()["u1"]
    driver.checkpoint.remove("u1")
    driver.checkpoint.start(ref, record.devices)  # as if the plugin had died before completing
    before = _mig_uuid(node, "u1")
    assert driver.prepare([ref])["u1"].error == ""
    assert node.hardware.calls[-2:] == [f"undo {MIG_0}", f"apply {MIG_0}"]
    assert len(node.hardware.partitions) == 1 and _mig_uuid(node, "u1") != before  # made again
    (spec,) = node.cdi_dir.glob("*.json")
    assert _mig_uuid(node, "u1") in spec.read_text()


def test_a_claim_still_in_progress_at_the_answer_budget_is_answered_and_its_retry_gets_the_result(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API server that hangs must not hold the kubelet's call past its 45 s deadline: the claim is answered
    "still in progress" at the budget, the work goes on, and the retry is answered from the checkpoint."""
    slow = node.api.add(claim("slow", [MIG_0]))
    quick = node.api.add(claim("quick", [MIG_1]))
    release = threading.Event()
    get = node.api.get

    def hanging_get(path: str) -> dict[str, Any] | None:
        if path.endswith("/claim-slow"):
            release.wait(30)
        return get(path)

    monkeypatch.setattr(node.api, "get", hanging_get)
    driver = node.driver()
    driver.answer_within_s = 0.5
    results = driver.prepare([slow, quick])
    assert results["quick"].error == "" and results["quick"].devices
    assert "still in progress: the kubelet's retry gets the result" in results["slow"].error
    release.set()
    driver.answer_within_s = 30.0
    retry = driver.prepare([slow])["slow"]  # waits for the claim lock held by the first attempt, then reads it
    assert retry.error == "" and [d.device for d in retry.devices] == [MIG_0]
    assert node.recorded() == {"quick": "PrepareCompleted", "slow": "PrepareCompleted"}


def test_a_claim_needing_a_missing_driver_tool_is_refused_before_anything_is_recorded(node: Node) -> None:
    node.hardware.missing = {"nvidia-smi", "nvidia-cuda-mps-control"}
    refs = [
        node.api.add(claim("u1", ["gpu-0-ts-0"], config=time_slicing("Short"))),
        node.api.add(claim("u2", ["gpu-1"])),
    ]
    results = node.driver().prepare(refs)
    assert "Short time-slicing needs nvidia-smi" in results["u1"].error
    assert results["u2"].error == ""
    assert node.recorded() == {"u2": "PrepareCompleted"} and node.hardware.calls == ["apply gpu-1"]


def test_mps_claims_on_one_gpu_share_its_daemon_and_compute_mode_until_the_last_leaves(node: Node) -> None:
    refs = [node.api.add(claim(u, ["gpu-0-shared"], config=_mps())) for u in ("a", "b")]
    driver = node.driver()
    driver.prepare(refs)
    pipe = str(node.root / "mps" / "gpu-0")
    assert node.hardware.mps == {pipe} and node.hardware.compute_modes == {0: EXCLUSIVE_PROCESS}
    assert [c for c in node.hardware.calls if c.startswith("start mps")] == [f"start mps {pipe}"]
    driver.unprepare(refs[:1])
    assert node.hardware.mps == {pipe} and node.hardware.compute_modes == {0: EXCLUSIVE_PROCESS}
    driver.unprepare(refs[1:])
    assert node.hardware.mps == set() and node.hardware.compute_modes == {}


def _mps() -> list[dict[str, Any]]:
    parameters = {
        "apiVersion": "gpu.dra-driver.dev/v1alpha1",
        "kind": "GpuConfig",
        "sharing": {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 25}},
    }
    return [{"source": "FromClaim", "requests": [], "opaque": {"driver": DRIVER, "parameters": parameters}}]
