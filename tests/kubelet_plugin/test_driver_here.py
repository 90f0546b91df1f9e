"""Which thread works on a claim: a one-claim call whose devices need no hardware work runs in the calling (gRPC)
thread; hardware work, a held lock or a short budget send it to the claim pool, which answers within the budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import pytest

from dra_driver.kubeletplugin.protocol import ClaimRef
from kubelet_plugin.driver import GpuDriver
from kubelet_plugin.records import DeviceRecord
from tests.kubelet_plugin.conftest import Node, claim

MIG_0 = "gpu-0-mig-1g-5gb-0"


def _threads(node: Node, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Thread names of each claim read, hardware apply and hardware undo."""
    seen: dict[str, list[str]] = {"get": [], "apply": [], "undo": []}
    get, apply, undo = node.api.get, node.hardware.apply, node.hardware.undo

    def recorded_get(path: str) -> dict[str, Any] | None:
        seen["get"].append(threading.current_thread().name)
        return get(path)

    def recorded_apply(record: DeviceRecord) -> DeviceRecord:
        seen["apply"].append(threading.current_thread().name)
        return apply(record)

    def recorded_undo(record: DeviceRecord, remaining: Iterable[DeviceRecord]) -> None:
        seen["undo"].append(threading.current_thread().name)
        undo(record, remaining)

    monkeypatch.setattr(node.api, "get", recorded_get)
    monkeypatch.setattr(node.hardware, "apply", recorded_apply)
    monkeypatch.setattr(node.hardware, "undo", recorded_undo)
    return seen


def _one_claim(
    node: Node, monkeypatch: pytest.MonkeyPatch, device: str
) -> tuple[ClaimRef, dict[str, list[str]], GpuDriver]:
    """A claim "u1" on ``device``, the threads that will touch it (``_threads``), and a plugin."""
    ref = node.api.add(claim("u1", [device]))
    return ref, _threads(node, monkeypatch), node.driver()


def test_a_whole_gpu_claim_alone_in_its_call_is_prepared_and_unprepared_in_the_calling_thread(
    plain_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, seen, driver = _one_claim(plain_node, monkeypatch, "gpu-1")
    assert driver.prepare([ref])["u1"].error == ""
    assert driver.unprepare([ref]) == {"u1": ""}
    me = threading.current_thread().name
    assert seen == {"get": [me], "apply": [me], "undo": [me]}
    assert plain_node.recorded() == {} and plain_node.specs() == []


def test_a_mig_claim_is_prepared_in_the_claim_pool_with_the_claim_as_read_once(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, seen, driver = _one_claim(node, monkeypatch, MIG_0)
    assert driver.prepare([ref])["u1"].error == ""
    assert driver.unprepare([ref]) == {"u1": ""}
    me = threading.current_thread().name
    assert seen["get"] == [me]  # read here, then handed over: not read again
    assert [name.startswith("claim") for name in seen["apply"] + seen["undo"]] == [True, True]
    assert node.hardware.partitions == {}  # created in the pool, destroyed in the pool


def test_two_claims_in_one_call_are_prepared_side_by_side_in_the_claim_pool(
    plain_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = plain_node
    refs = [node.api.add(claim(u, [g])) for u, g in (("u1", "gpu-1"), ("u2", "gpu-2"))]
    seen = _threads(node, monkeypatch)
    results = node.driver().prepare(refs)
    assert [r.error for r in results.values()] == ["", ""]
    assert all(name.startswith("claim") for name in seen["get"] + seen["apply"])


def test_a_budget_too_short_for_a_slow_claim_read_sends_the_claim_to_the_pool(
    plain_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, seen, driver = _one_claim(plain_node, monkeypatch, "gpu-1")
    assert driver.claim_read_s == 20.0  # the default API timeouts' sum
    assert driver.prepare([ref], within_s=10.0)["u1"].error == ""  # e.g. what the starting gate left
    assert seen["get"][0].startswith("claim")


def test_a_claim_whose_lock_another_call_holds_is_answered_within_the_budget_and_finished_later(
    plain_node: Node,
) -> None:
    node = plain_node
    ref = node.api.add(claim("u1", ["gpu-1"]))
    driver: GpuDriver = node.driver()
    driver.claim_read_s = 0.1  # so that a 0.5 s budget would be worked on here if the lock were free
    driver.answer_within_s = 0.5
    held, release = threading.Event(), threading.Event()

    def first_attempt() -> None:  # as the first attempt holds it while a kubelet retry comes in
        with driver.locks.claim("u1"):
            held.set()
            release.wait(5)

    holder = threading.Thread(target=first_attempt)
    holder.start()
    held.wait(5)
    started = time.monotonic()
    late = driver.prepare([ref])["u1"]
    took = time.monotonic() - started
    release.set()
    holder.join(5)
    assert "still in progress: the kubelet's retry gets the result" in late.error
    assert took < 2.0  # not blocked on the lock in the calling thread
    driver.answer_within_s = 30.0
    retry = driver.prepare([ref])["u1"]  # the pool's attempt got the lock once it was let go
    assert retry.error == "" and [d.device for d in retry.devices] == ["gpu-1"]
    assert node.recorded() == {"u1": "PrepareCompleted"}


def test_what_the_calling_thread_spent_before_handing_over_counts_against_the_budget(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A MIG claim read slowly here, then slow in the pool: the call is still answered within its budget."""
    ref = node.api.add(claim("u1", [MIG_0]))
    get, apply = node.api.get, node.hardware.apply
    release = threading.Event()

    def slow_get(path: str) -> dict[str, Any] | None:
        time.sleep(1.0)
        return get(path)

    def stuck_apply(record: DeviceRecord) -> DeviceRecord:
        release.wait(10)
        return apply(record)

    monkeypatch.setattr(node.api, "get", slow_get)
    monkeypatch.setattr(node.hardware, "apply", stuck_apply)
    driver = node.driver()
    driver.claim_read_s, driver.answer_within_s = 1.0, 3.0
    started = time.monotonic()
    late = driver.prepare([ref])["u1"]
    took = time.monotonic() - started
    release.set()
    assert "still in progress" in late.error
    assert 2.9 <= took < 3.7  # 1 s reading here, the rest of the 3 s waiting on the pool (not 3 s more)
