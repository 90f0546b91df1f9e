"""Registration first, the plugin behind a gate (kubelet_plugin/starting.py)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from dra_driver.kubeletplugin.protocol import ClaimRef, PrepareResult
from dra_driver.termination import Termination
from kubelet_plugin.starting import MIN_BUDGET_S, StartingGate, hold_state_lock
from nvml_sim.build import library_path
from nvml_sim.driver_install import install

CLAIM = ClaimRef("default", "uid-1", "claim-1")


class Recorder:
    """Stands in for the plugin: records the budget each call got."""

    def __init__(self) -> None:
        self.budgets: list[float | None] = []

    def prepare(
        self, claims: list[ClaimRef], within_s: float | None = None, answered: threading.Event | None = None
    ) -> dict[str, PrepareResult]:
        self.budgets.append(within_s)
        return {c.uid: PrepareResult() for c in claims}

    def unprepare(self, claims: list[ClaimRef], within_s: float | None = None) -> dict[str, str]:
        self.budgets.append(within_s)
        return {c.uid: "" for c in claims}

    def health(self, timeout: float) -> list[tuple[str, str, int, str]]:
        return [("pool", "gpu-0", 1, "")]


def _in_thread(call: object) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(call()))  # type: ignore[operator]
    thread.start()
    return thread, out


def test_a_call_waits_in_the_gate_and_the_plugin_gets_what_is_left_of_its_budget() -> None:
    gate, plugin = StartingGate(budget_s=30.0), Recorder()
    thread, out = _in_thread(lambda: gate.prepare([CLAIM]))
    time.sleep(0.3)  # the call is waiting: nothing answered yet (this sleep is the wait being measured)
    assert out == [] and thread.is_alive()
    gate.open(plugin)
    thread.join(10)
    assert out == [{"uid-1": PrepareResult()}]
    (budget,) = plugin.budgets
    assert budget is not None and 20.0 < budget <= 30.0 - 0.3  # it waited at least 0.3 s of its 30


def test_a_call_after_the_gate_opened_goes_straight_through() -> None:
    gate, plugin = StartingGate(budget_s=30.0), Recorder()
    gate.open(plugin)
    assert gate.unprepare([CLAIM]) == {"uid-1": ""}
    assert gate.health(0.1) == [("pool", "gpu-0", 1, "")]
    (budget,) = plugin.budgets
    assert budget is not None and budget > 29.0


def test_a_call_whose_budget_runs_out_in_the_gate_is_answered_still_starting() -> None:
    gate = StartingGate(budget_s=MIN_BUDGET_S + 0.2)
    started = time.monotonic()
    (result,) = gate.prepare([CLAIM]).values()
    assert time.monotonic() - started < MIN_BUDGET_S + 2.0
    assert "still starting" in result.error and "the kubelet retries" in result.error
    assert gate.unprepare([CLAIM])["uid-1"].startswith("the plugin is still starting")
    assert gate.health(0.05) == []  # nothing published yet: no device to report


def test_calls_after_a_failed_start_say_why() -> None:
    gate = StartingGate(budget_s=30.0)
    gate.fail("cannot load NVML")
    started = time.monotonic()
    (result,) = gate.prepare([CLAIM]).values()
    assert time.monotonic() - started < 1.0  # answered at once, not after the budget
    assert "failed to start (cannot load NVML)" in result.error


def test_a_start_that_fails_after_registration_removes_its_sockets_and_exits_1(tmp_path: Path) -> None:
    root = install(tmp_path / "driver-root", "580.95.05", library_path())
    registry, plugins = tmp_path / "registry", tmp_path / "plugins"
    argv = [sys.executable, "-m", "kubelet_plugin", "--node-name", "n", "--driver-root", str(root)]
    argv += ["--state-dir", str(tmp_path / "state"), "--cdi-dir", str(tmp_path / "cdi")]
    argv += ["--plugins-dir", str(plugins), "--registry-dir", str(registry)]
    argv += ["--nvml-lib", str(tmp_path / "missing" / "libnvidia-ml.so.1")]
    env = {k: v for k, v in os.environ.items() if k not in ("NVML_LIB", "KUBECONFIG")}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "serving DRA on" in done.stderr  # registered first ...
    critical = [line for line in done.stderr.splitlines() if "cannot start:" in line]
    assert len(critical) == 1 and "cannot load NVML library" in critical[0]  # ... then refused in one line
    assert not list(registry.glob("*.sock")) and not list(plugins.rglob("*.sock"))  # the kubelet deregisters it


def test_sigterm_ends_a_wait_for_the_state_lock_and_the_lock_is_taken_once_free(tmp_path: Path) -> None:
    """A rolling update's new pod deleted while the old one still runs exits at once, having touched nothing."""
    path = tmp_path / "state" / "plugin.lock"
    path.parent.mkdir()
    with open(path, "a+") as holder:  # the old plugin
        fcntl.flock(holder, fcntl.LOCK_EX)
        with Termination() as stop:
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
            assert hold_state_lock(path, stop) is None
            assert stop.signum == signal.SIGTERM
    with Termination() as stop:  # the old plugin has exited
        lock = hold_state_lock(path, stop)
        assert lock is not None
        lock.close()
