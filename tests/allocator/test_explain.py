"""Explanations: per-request device counts and the reasons behind an unsatisfiable claim."""

from __future__ import annotations

import sys
from typing import Any

from pytest import MonkeyPatch

from dra_driver.structured import Allocation, Failed, Unsatisfiable, allocate_claims, evaluate, explain
from dra_driver.structured.evaluate import IN_USE, NO_COUNTERS, TAINTED, USABLE
from dra_driver.structured.reasons import CountersExhausted, DevicesContended
from tests.allocator.builders import (
    DRIVER,
    NODE,
    allocated,
    attributes,
    claim,
    cluster,
    consumes,
    counter_set,
    device,
    exact,
    first_available,
    gpus,
    resource_slice,
    result,
    sub,
)


def test_counts_matching_usable_and_blocked_devices_per_request() -> None:
    devices = [
        *gpus(3),
        device("tainted", attributes(index=9), taints=[{"key": "k", "effect": "NoExecute"}]),
        device("cpu-0", attributes(kind="cpu")),
    ]
    state = cluster([resource_slice("s", devices)], allocated_claims=[allocated("old", result("gpu-1"))])
    want = claim("c", exact("gpu", "gpu", 4, f'has(device.attributes["{DRIVER}"].index)'))
    report = explain(state, want, NODE)
    assert isinstance(report.outcome, Unsatisfiable)
    (gpu,) = report.requests
    assert (gpu.candidates, gpu.matching, gpu.usable, gpu.number(IN_USE), gpu.number(TAINTED)) == (5, 4, 2, 1, 1)
    assert gpu.summary("node-1") == (
        "gpu: 4 needed; 2 of 4 matching devices usable on node-1 (1 in use, 1 taint not tolerated)"
    )
    assert report.lines()[0] == "not allocatable on node-1: cannot allocate all claims"


def test_names_the_counter_set_and_counters_that_ran_out() -> None:
    devices = [device(f"mig-{i}", consumesCounters=[consumes("gpu-0", memory_slice_0="1")]) for i in range(2)]
    slices = [
        resource_slice("a", devices, count=2),
        resource_slice("b", shared_counters=[counter_set("gpu-0", memory_slice_0="1")], count=2),
    ]
    state = cluster(slices, allocated_claims=[allocated("old", result("mig-0"))])
    report = explain(state, claim("c", exact("gpu")), NODE)
    (gpu,) = report.requests
    assert [d.state for d in gpu.devices] == [IN_USE, NO_COUNTERS]
    assert gpu.devices[1].counters == (("gpu-0", "memory-slice-0"),)
    assert isinstance(report.outcome, Unsatisfiable)
    assert CountersExhausted("gpu", f"{DRIVER}/node-1", "gpu-0", ("memory-slice-0",), 1) in report.outcome.reasons
    (pool,) = report.pools
    assert pool.counters_left["gpu-0"]["memory-slice-0"].nanos == 0


def test_requests_that_fit_alone_but_not_together_are_reported_as_contended() -> None:
    state = cluster([resource_slice("s", gpus(2))])
    report = explain(state, claim("c", exact("a", count=2), exact("b")), NODE)
    assert all(r.satisfiable for r in report.requests)
    assert isinstance(report.outcome, Unsatisfiable)
    assert report.outcome.reasons == (DevicesContended(("a", "b")),)


def test_every_alternative_of_a_first_available_request_is_reported() -> None:
    state = cluster([resource_slice("s", gpus(1))])
    report = explain(state, claim("c", first_available("gpu", sub("two", count=2), sub("one"))), NODE)
    assert [(r.request, r.usable, r.satisfiable) for r in report.requests] == [
        ("gpu/two", 1, False),
        ("gpu/one", 1, True),
    ]
    assert isinstance(report.outcome, Allocation)
    assert report.lines()[0] == "allocatable on node-1: gpu/one=node-1/gpu-0"


def test_selector_errors_are_listed_per_device() -> None:
    state = cluster([resource_slice("s", [device("a")])])
    report = explain(state, claim("c", exact("gpu", "gpu", 1, f'device.attributes["{DRIVER}"].model == "x"')), NODE)
    assert isinstance(report.outcome, Failed)
    (gpu,) = report.requests
    assert gpu.devices[0].state == "error" and "no such key: model" in gpu.devices[0].detail
    assert not gpu.satisfiable


def test_all_devices_usable_when_the_claim_fits() -> None:
    report = explain(cluster([resource_slice("s", gpus(2))]), [claim("c", exact("gpu", allocationMode="All"))], NODE)
    (gpu,) = report.requests
    assert [d.state for d in gpu.devices] == [USABLE, USABLE] and gpu.needed == 2
    assert isinstance(report.outcome, Allocation)


def test_an_unsatisfiable_claim_judges_its_requests_once_and_explains_the_same(monkeypatch: MonkeyPatch) -> None:
    state = cluster([resource_slice("s", gpus(2))], allocated_claims=[allocated("old", result("gpu-1"))])
    want = claim("c", exact("gpu", "gpu", 2))
    plain = explain(state, want, NODE)
    calls: list[str] = []
    judge = evaluate.claim_reports

    def counted(*args: Any) -> evaluate.ClaimReports:
        calls.append("judged")
        return judge(*args)

    for module in ("diagnose", "explain"):  # the package's names are its functions: the modules by path
        monkeypatch.setattr(sys.modules[f"dra_driver.structured.{module}"], "claim_reports", counted)
    memo: evaluate.ReportMemo = {}
    outcome = allocate_claims(state, [want], NODE, reports=memo)
    shared = explain(state, want, NODE, outcome=outcome, reports=memo)
    assert isinstance(outcome, Unsatisfiable) and calls == ["judged"]
    assert shared == plain
    calls.clear()
    assert explain(state, want, NODE) == plain and calls == ["judged"]
