"""``python -m kubelet_plugin``: register with the kubelet first, then build the plugin behind a gate.

Start-up order: settings and logging -> the flags that name the environment checked (the metrics port can be
listened on, the driver root holds a driver: refused in one line before anything is touched) -> the node's
state lock (a rolling update's new plugin pod waits here until the old one has exited, so the kubelet keeps
calling the old one meanwhile) -> the gRPC services (DRA socket, then registration) with a ``StartingGate`` as
their handler -> the API server's facts asked for in a thread (``api_facts``) -> only now the rest of the
plugin's imports and ``plugin.Plugin`` (NVML, the checkpoint, the first publication, start-up repair) -> the
plugin opens the gate where its claims can be served (after repair, every GPU's lock held for the deferred
settings check).

Until the gate opens, prepare and unprepare calls wait in it. The plugin gets what is left of the call's
budget (the kubelet's 45 s less 5 s, ``ANSWER_WITHIN_S``); a call whose budget ran out in the gate, or that
came in after the start failed, gets a per-claim error saying so, and the kubelet retries. Health streams see
no devices until then (as before the first publication). A fatal error while starting is one log line, the
sockets removed (the kubelet deregisters the plugin) and exit code 1.
"""

from __future__ import annotations

import faulthandler
import fcntl
import gc
import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import IO, Protocol

from dra_driver import errors
from dra_driver.driver_root import discover_driver_files
from dra_driver.kubeletplugin.protocol import ANSWER_WITHIN_S, ClaimRef, PrepareResult
from dra_driver.kubeletplugin.server import Answered, PluginServer
from dra_driver.termination import Termination
from kubelet_plugin import logs
from kubelet_plugin.settings import Settings, metrics_listen_error, parse

log = logging.getLogger(__name__)
# A thread waiting for the GIL gets it after at most this long (CPython's default is 5 ms): the gRPC thread that
# answers the kubelet must not wait behind a background thread (a status write, the health feed, a re-scan).
SWITCH_INTERVAL_S = 0.0005
STATE_LOCK_LOOK_S = 0.1  # how often a plugin waiting for the state lock tries it again
MIN_BUDGET_S = 0.5  # a call with less than this left after waiting in the gate is answered "still starting"


class Served(Protocol):
    """What the gate hands calls to once open (``plugin.Plugin``)."""

    def prepare(
        self, claims: list[ClaimRef], within_s: float | None = None, answered: Answered | None = None
    ) -> dict[str, PrepareResult]: ...
    def unprepare(self, claims: list[ClaimRef], within_s: float | None = None) -> dict[str, str]: ...
    def health(self, timeout: float) -> list[tuple[str, str, int, str]]: ...


class StartingGate:
    """The gRPC services' handler while the plugin starts: calls wait until ``open`` (or ``fail``)."""

    def __init__(self, budget_s: float = ANSWER_WITHIN_S) -> None:
        self.budget_s = budget_s
        self._done = threading.Event()
        self._served: Served | None = None
        self._failure = ""

    def open(self, served: Served) -> None:
        self._served = served
        self._done.set()

    def fail(self, why: str) -> None:
        self._failure = why
        self._done.set()

    def _wait(self) -> tuple[Served | None, float]:
        started = time.monotonic()
        self._done.wait(self.budget_s)
        left = self.budget_s - (time.monotonic() - started)
        return (self._served if left >= MIN_BUDGET_S else None), left

    def _refusal(self) -> str:
        if self._failure:
            return f"the plugin failed to start ({self._failure}); it restarts and the kubelet retries"
        return f"the plugin is still starting after {self.budget_s:.0f}s (start-up repair); the kubelet retries"

    def prepare(self, claims: list[ClaimRef], answered: Answered | None = None) -> dict[str, PrepareResult]:
        served, left = self._wait()
        if served is None:
            return {c.uid: PrepareResult(error=self._refusal()) for c in claims}
        return served.prepare(claims, within_s=left, answered=answered)

    def unprepare(self, claims: list[ClaimRef]) -> dict[str, str]:
        served, left = self._wait()
        if served is None:
            return {c.uid: self._refusal() for c in claims}
        return served.unprepare(claims, within_s=left)

    def health(self, timeout: float) -> list[tuple[str, str, int, str]]:
        if self._served is not None:
            return self._served.health(timeout)
        self._done.wait(timeout)
        return []  # nothing published yet: no device to report


def hold_state_lock(path: Path, stop: Termination) -> IO[str] | None:
    """One plugin at a time owns the node's checkpoint, CDI specs and GPUs: a rolling update's new pod
    waits here until the old one has exited (the lock dies with its process). None when SIGTERM came first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path, "a+")  # noqa: SIM115  (held for the life of the process)
    waiting = False
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if not waiting:
                log.info("another plugin owns %s; waiting for it to exit", path.parent)
                waiting = True
        if stop.wait(STATE_LOCK_LOOK_S):
            lock.close()
            return None


def check_metrics_port(settings: Settings) -> None:
    """A ``--metrics-port`` that cannot be listened on fails the start before anything is touched (the metrics
    server itself starts with the plugin, after registration)."""
    if not settings.metrics_port:
        return
    try:
        infos = socket.getaddrinfo(settings.metrics_address or None, settings.metrics_port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the metrics server binds
            s.bind(address)
    except (OSError, UnicodeError) as exc:
        raise metrics_listen_error(settings.metrics_address, settings.metrics_port, exc) from exc


def main(argv: list[str] | None = None) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    settings = parse(argv)
    logs.configure(settings.log_json, settings.node_name)
    stop = Termination().install()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # SIGUSR1: every thread's stack to stderr (the log)
    try:  # what the flags name is checked before anything is touched
        check_metrics_port(settings)
        files = discover_driver_files(settings.driver_root, settings.host_driver_root)
    except errors.FatalError as exc:
        log.critical("cannot start: %s", exc)
        raise SystemExit(1) from None
    state_lock = hold_state_lock(settings.state_dir / "plugin.lock", stop)
    if state_lock is None:  # a pod deleted while it waited: nothing was started
        log.info("%s while waiting for the state lock: exiting", stop.name)
        return
    gate = StartingGate()
    server = PluginServer(settings.driver_name, settings.dra_socket, settings.registration_socket, gate)
    server.start()
    from kubelet_plugin import api_facts  # imports the API client: after registration

    api = api_facts.in_background(settings)
    try:
        from kubelet_plugin.plugin import Plugin, serve_health  # the plugin's own imports: after registration

        plugin = Plugin(settings, files, server, state_lock, api)
    except errors.FatalError as exc:
        log.critical("cannot start: %s", exc)
        gate.fail(str(exc))
        server.stop(grace=0)
        raise SystemExit(1) from None
    except BaseException:
        gate.fail("an internal error; see the plugin's log")
        server.stop(grace=0)
        raise
    plugin.start(gate.open)
    if settings.health_port:  # after the first publication is under way
        serve_health(plugin, settings.health_port)
    # what start-up made lives as long as the process: out of the collector's sight, so that a full collection
    # during a claim walks the claims' objects only (not the ~10^5 of the imports)
    gc.freeze()
    log.info("plugin started on node %s; ready once its slices are published", settings.node_name)
    stop.wait()
    log.info("%s: shutting down", stop.name)
    stopping = time.monotonic()
    plugin.stop()
    log.info("stopped in %.1f s", time.monotonic() - stopping)
