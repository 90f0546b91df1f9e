"""Leader election when the API server stops answering: the holder stops acting once its lease has run out, counted
from when its last renewal was sent, even while a renewal hangs. The API stand-in keeps one Lease in a dict."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from controller.leader import LeaderElector
from dra_driver.k8s import ApiError
from e2e.wait import until

LEASE_S = 3


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class LeaseStandIn:
    """GET/POST/PUT of one Lease; ``slow_s``: how far the clock moves while a write is answered."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lease: dict[str, Any] | None = None
        self.slow_s = 0.0
        self.down = False

    def _answer(self) -> None:
        if self.down:
            raise ApiError("GET", "/lease", 503, "unavailable")
        self.clock.now += self.slow_s

    def get(self, path: str) -> dict[str, Any] | None:
        self._answer()
        return None if self.lease is None else dict(self.lease)

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._answer()
        self.lease = dict(body)
        return body

    def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._answer()
        self.lease = dict(body)
        return body


def _elector(kube: LeaseStandIn, clock: Clock) -> LeaderElector:
    return LeaderElector(kube, "default", "l", "me", lease_s=LEASE_S, renew_s=1, clock=clock)  # type: ignore[arg-type]


def test_a_leader_whose_renewals_fail_stops_acting_when_its_lease_runs_out() -> None:
    clock = Clock()
    kube = LeaseStandIn(clock)
    elector = _elector(kube, clock)
    assert elector.step() and elector.leading.is_set()
    kube.down = True
    clock.now += LEASE_S - 0.5
    assert elector.step() and elector.leading.is_set()  # failed, but within the lease: still acting
    assert not elector.lapse()
    clock.now += 0.5
    assert elector.lapse() and not elector.leading.is_set()  # no renewal answered: out, without waiting for one


def test_a_renewal_answered_after_the_lease_ran_out_does_not_count() -> None:
    clock = Clock()
    kube = LeaseStandIn(clock)
    elector = _elector(kube, clock)
    assert elector.step()
    kube.slow_s = LEASE_S / 2  # GET and PUT each take half the lease: the answer comes when it has lapsed
    assert not elector.step() and not elector.leading.is_set()


def test_the_guard_clears_leading_while_a_renewal_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    kube = LeaseStandIn(clock)
    elector = _elector(kube, clock)
    assert elector.step()
    hanging, release = threading.Event(), threading.Event()

    def hang(path: str) -> dict[str, Any] | None:
        hanging.set()
        release.wait(10)
        raise ApiError("GET", path, 504, "timeout")

    monkeypatch.setattr(kube, "get", hang)
    stop = threading.Event()
    runner = threading.Thread(target=elector.run, args=(stop,))
    runner.start()
    try:
        assert hanging.wait(5)
        clock.now += LEASE_S
        until(lambda: not elector.leading.is_set(), "the guard stopping the leader", timeout=5)
    finally:
        stop.set()
        release.set()
        runner.join(10)
