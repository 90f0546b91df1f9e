"""Which thread works on a claim: a one-claim call whose devices need no hardware work runs in the calling (gRPC)
thread; hardware work, a held lock or a short budget send it to the claim pool, which answers within the budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest

import kubelet_plugin.driver as driver_module
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
    """A MIG claim whose read took 1 s (by the driver's clock) here: the claim pool is waited on for what is left
    of the call's budget, not for the whole budget again."""
    ref = node.api.add(claim("u1", [MIG_0]))
    get = node.api.get
    spent = [0.0]  # added to the driver's clock: no test time passes

    def slow_get(path: str) -> dict[str, Any] | None:
        spent[0] += 1.0
        return get(path)

    monkeypatch.setattr(driver_module, "time", SimpleNamespace(monotonic=lambda: time.monotonic() + spent[0]))
    monkeypatch.setattr(node.api, "get", slow_get)
    driver = node.driver()
    waited: list[float] = []
    answers = driver._answers

    def recorded_answers(futures: dict[str, Future[Any]], late: Any, budget: float) -> dict[str, Any]:
        waited.append(budget)
        return answers(futures, late, budget)

    monkeypatch.setattr(driver, "_answers", recorded_answers)
    driver.claim_read_s, driver.answer_within_s = 1.0, 3.0
    assert driver.prepare([ref])["u1"].error == ""
    assert len(waited) == 1 and 1.9 < waited[0] <= 2.0  # 3 s less the 1 s spent reading here
