"""MPS control daemons kept in line with the checkpoint: at start-up (``reconcile``) and while the plugin runs
(``MpsSupervisor``).

The daemons a node should run are those of its prepared claims (``PrepareCompleted``) whose devices have MPS.
``reconcile`` stops every daemon (and removes every pipe directory) no recorded claim uses, and starts the
daemons of prepared claims that are not running: after a crash of the plugin, of a daemon, or of both.
A daemon dies with the plugin's container (its PID namespace and cgroup; docs/kubelet-plugin.md), so after a
container restart ``reconcile`` starts them all again; where it outlived the plugin it is adopted by its PID file.
``MpsSupervisor`` checks every ``period`` seconds and starts a dead daemon again, under the claim's lock and
its GPU's lock (so never in the middle of that claim's unprepare, nor of a prepare on the GPU), with an
exponential backoff per daemon (``first`` doubling up to ``cap``; back to ``first`` once a restarted daemon
has run through its backoff delay).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dra_driver.resourceslice.backoff import Backoff
from kubelet_plugin.driver import GpuDriver
from kubelet_plugin.hardware import HARDWARE_ERRORS
from kubelet_plugin.logs import ClaimLogger
from kubelet_plugin.records import DeviceRecord

log = logging.getLogger(__name__)


def _key(pipe_directory: str) -> str:
    return str(Path(pipe_directory))


def _wanted(driver: GpuDriver, states: tuple[str, ...] = ("PrepareCompleted",)) -> dict[str, tuple[str, DeviceRecord]]:
    """Pipe directory -> (claim UID, device) of every MPS device of the claims in ``states`` (first one wins: the
    daemon of a shared GPU serves several claims)."""
    out: dict[str, tuple[str, DeviceRecord]] = {}
    for uid, record in driver.checkpoint.claims().items():
        if record.state in states:
            for device in record.devices:
                if device.mps is not None:
                    out.setdefault(_key(device.mps.pipe_directory), (uid, device))
    return out


@dataclass(frozen=True)
class MpsReport:
    started: int = 0
    stopped: int = 0


def _start(driver: GpuDriver, uid: str, device: DeviceRecord) -> bool:
    """Start the device's daemon if its claim is still prepared; under the claim's and the GPU's locks."""
    with driver.locks.claim(uid):
        record = driver.checkpoint.get(uid)
        if record is None or record.state != "PrepareCompleted" or device not in record.devices:
            return False
        with driver.locks.hold({device.hardware.gpu_index}):
            started = driver.hardware.start_mps(device)
    if started:
        ClaimLogger(log, record.claim).warning(
            "MPS control daemon of device %s was not running (CUDA processes that used it lost their MPS server; new "
            "ones get MPS again): started",
            device.device,
        )
    return started


def reconcile(driver: GpuDriver) -> MpsReport:
    """Start-up: stop the daemons no recorded claim uses, start those of prepared claims that do not run."""
    recorded = _wanted(driver, ("PrepareStarted", "PrepareCompleted", "UnprepareStarted"))
    stopped = started = 0
    for pipe, pid in driver.hardware.mps_daemons().items():
        if _key(pipe) in recorded:
            continue
        try:
            if driver.hardware.stop_mps(pipe):
                log.warning("stopped MPS control daemon %s in %s: no claim uses it", pid, pipe)
                stopped += 1
        except HARDWARE_ERRORS as exc:
            log.error("could not stop the MPS control daemon in %s (next start-up retries): %s", pipe, exc)
    for uid, device in _wanted(driver).values():
        try:
            started += _start(driver, uid, device)
        except HARDWARE_ERRORS as exc:
            log.error("could not start the MPS control daemon of device %s (the supervisor retries): %s", device, exc)
    return MpsReport(started, stopped)


@dataclass
class _Retry:
    backoff: Backoff
    next_at: float = 0.0
    attempts: int = 0


@dataclass
class MpsSupervisor:
    """Starts the daemons of prepared claims again when they die (see the module docstring)."""

    driver: GpuDriver
    period: float = 2.0
    first: float = 1.0
    cap: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _retries: dict[str, _Retry] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def check(self) -> list[str]:
        """One pass; returns the pipe directories whose daemon was started again."""
        now = self.clock()
        wanted = _wanted(self.driver)
        running = {_key(p): pid for p, pid in self.driver.hardware.mps_daemons().items()}
        for pipe in set(self._retries) - set(wanted):
            del self._retries[pipe]
        restarted = []
        for pipe, (uid, device) in sorted(wanted.items()):
            retry = self._retries.get(pipe)
            if running.get(pipe) is not None:
                if retry is not None and now >= retry.next_at:
                    del self._retries[pipe]  # has run through its backoff delay: healthy again
                continue
            if retry is None:
                retry = self._retries[pipe] = _Retry(Backoff(self.first, self.cap))
            if now < retry.next_at:
                continue
            retry.next_at = now + retry.backoff.next()
            retry.attempts += 1
            try:
                if _start(self.driver, uid, device):
                    restarted.append(pipe)
            except HARDWARE_ERRORS as exc:
                log.error(
                    "MPS control daemon of device %s in %s did not start (attempt %d, next in %.0fs): %s",
                    device.device,
                    pipe,
                    retry.attempts,
                    retry.next_at - now,
                    exc,
                )
        return restarted

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mps-supervisor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self.period):
            try:
                self.check()
            except Exception:
                log.exception("MPS supervision pass failed; next in %.0fs", self.period)

    def stop(self) -> None:
        """Stop supervising; the daemons keep running (their containers too), for the next plugin."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
