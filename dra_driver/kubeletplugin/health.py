"""The device-health feed behind the kubelet's health streams (NodeWatchResources).

The kubelet keeps a device's last reported health for the report's ``health_check_timeout_seconds``
(``HEALTH_CHECK_TIMEOUT_S``, its own default too) and then shows the device as ``Unknown`` in the pod's
``allocatedResourcesStatus``; a device missing from a report is left to time out the same way. So every
stream carries the full snapshot of every device: at once on connect, on every change, and again at least
every ``HEALTH_RESEND_S`` without a change, well inside the timeout.

One watcher thread per feed, running only while a stream is open, asks the handler for the snapshot
(``source(timeout)`` blocks up to ``timeout`` for a change) and wakes the streams. A stream waits on the
feed's condition, so it ends at once when its client goes away (``wake`` from the RPC's done-callback)
or the feed closes; the watcher ends within ``watch_s`` after the last stream, and ``close`` joins it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

Snapshot = list[tuple[str, str, int, str]]  # (pool, device, HealthStatus value, message), every device
HEALTH_CHECK_TIMEOUT_S = 30  # sent with every device; the kubelet marks a device Unknown after this
HEALTH_RESEND_S = 15.0  # the full snapshot is sent again at least this often
WATCH_S = 0.5  # the longest the watcher blocks in the handler before it looks whether it is still needed


class HealthFeed:
    def __init__(
        self, source: Callable[[float], Snapshot], resend_s: float = HEALTH_RESEND_S, watch_s: float = WATCH_S
    ) -> None:
        if not 0 < resend_s < HEALTH_CHECK_TIMEOUT_S:
            raise ValueError(f"resend interval {resend_s} s must be above 0 and below {HEALTH_CHECK_TIMEOUT_S} s")
        self._source = source
        self.resend_s = resend_s
        self._watch_s = watch_s
        self._cond = threading.Condition()
        self._snapshot: Snapshot | None = None  # the watcher's latest; None until its first look
        self._version = 0  # bumped on every new snapshot
        self._streams = 0
        self._closed = False
        self._watcher: threading.Thread | None = None

    def stream(self, active: Callable[[], bool]) -> Iterator[Snapshot]:
        """Full snapshots for one client: the first at once, then on every change and at least every
        ``resend_s``. Ends when ``active()`` turns false (call ``wake`` then) or the feed closes."""
        with self._cond:
            if self._closed:
                return
            self._streams += 1
            self._start_watcher()
        try:
            seen, deadline = -1, 0.0  # the first snapshot goes out as soon as there is one
            while (due := self._next(active, seen, deadline)) is not None:
                seen, snapshot = due
                yield snapshot
                deadline = time.monotonic() + self.resend_s
        finally:
            with self._cond:
                self._streams -= 1
                self._cond.notify_all()

    def _next(self, active: Callable[[], bool], seen: int, deadline: float) -> tuple[int, Snapshot] | None:
        """The next snapshot to send, with its version: a new one, or the latest once ``deadline`` has passed;
        None when the stream must end."""
        with self._cond:
            while not self._closed and active():
                if self._snapshot is None:
                    self._cond.wait()  # the watcher's first look
                    continue
                remaining = deadline - time.monotonic()
                if self._version != seen or remaining <= 0:
                    return self._version, self._snapshot
                self._cond.wait(remaining)
            return None

    def wake(self) -> None:
        """Make every stream look at ``active()`` again (its client may have gone)."""
        with self._cond:
            self._cond.notify_all()

    def close(self, timeout: float | None = None) -> None:
        """End every stream now and wait for the watcher (up to ``timeout``, default ``2 * watch_s``)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            watcher = self._watcher
        if watcher is not None:
            watcher.join(2 * self._watch_s if timeout is None else timeout)

    def _start_watcher(self) -> None:
        """Called with the condition held."""
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="health-watch", daemon=True)
            self._watcher.start()

    def _needed(self) -> bool:
        """Called with the condition held; a watcher that is no longer needed forgets its snapshot, so the
        next one starts from a fresh look."""
        if self._closed or self._streams == 0:
            self._watcher = None
            self._snapshot = None
            return False
        return True

    def _watch(self) -> None:
        timeout = 0.0  # the first look does not wait for a change
        while True:
            with self._cond:
                if not self._needed():
                    return
            try:
                snapshot = self._source(timeout)
            except Exception:
                log.exception("reading device health failed; retrying in %.0f s", self._watch_s)
                with self._cond:
                    self._cond.wait(self._watch_s)
                continue
            timeout = self._watch_s
            with self._cond:
                if snapshot != self._snapshot:
                    self._snapshot = snapshot
                    self._version += 1
                    self._cond.notify_all()
