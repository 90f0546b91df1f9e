"""Small helpers shared by the sandbox tests."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

from e2e.fixtures import Sandbox
from sandbox import health
from sandbox.instance import PidRecord, alive
from sandbox.pki import ADMIN, Pki
from sandbox.status import Status

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], timeout: float, what: str | Callable[[], str], interval: float = 0.25
) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test naming ``what`` (evaluated then) otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def living(status: Status) -> list[str]:
    """Names of the sandbox's processes (supervisor included) that are still alive."""
    records = [("supervisor", PidRecord(status.supervisor_pid, status.supervisor_start_ticks))]
    records += [(p.name, PidRecord(p.pid, p.start_ticks)) for p in status.processes]
    return [name for name, record in records if alive(record)]


def enabled_gates_in_metrics(sandbox: Sandbox, port: int) -> set[str]:
    """Feature gates a component reports as enabled on its /metrics (read as the sandbox admin)."""
    pki = Pki(sandbox.layout.pki)
    tls = health.TlsIdentity(pki.ca_cert, pki.client_cert(ADMIN), pki.client_key(ADMIN)).context()
    code, body = health.get(f"https://127.0.0.1:{port}/metrics", tls)
    assert code == 200, body[:300]
    return set(re.findall(r'^kubernetes_feature_enabled\{name="([A-Za-z0-9]+)",stage="[A-Z]*"\} 1$', body, re.M))
