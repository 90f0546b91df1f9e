"""Waiting in a daemon's main thread for SIGTERM or SIGINT, whichever of its threads the kernel hands it to.

Python runs a signal's handler in the main thread, between bytecodes. The kernel delivers a signal sent to the
process to any one of its threads that does not block it; when another thread takes it, a main thread blocked in
a wait without a timeout (``threading.Event.wait()``) is not woken and the handler never runs. Seen here: a kubelet
plugin with a dozen threads that ignored SIGTERM for good, its main thread in ``stop.wait()``, the signal no longer
pending. ``Termination.wait`` blocks on the signal wakeup fd instead (``signal.set_wakeup_fd``): CPython's C-level
handler writes to it in whichever thread took the signal, the main thread wakes, and the handler runs.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)
LOOK_S = 1.0  # and the main thread looks at least this often, should a wakeup ever be missed


class Termination:
    """From ``install`` (in the main thread) until ``restore``: SIGTERM and SIGINT set ``event`` (and call
    ``on_signal`` with the signal's number, in the main thread) instead of ending the process."""

    def __init__(self, on_signal: Callable[[int], None] | None = None) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._on_signal = on_signal
        self._read = self._write = -1
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1

    def install(self) -> Termination:
        """Catch the signals from now on; the main thread only (as ``signal.signal``), once per object."""
        if self._write >= 0:
            raise RuntimeError("this Termination is installed already")
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("signal handlers can only be installed by the main thread")
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        try:
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        except BaseException:
            self.restore()
            raise
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum
        self.event.set()
        if self._on_signal is not None:
            self._on_signal(signum)

    def wait(self, timeout: float | None = None) -> bool:
        """Block the main thread until a signal has been handled (True) or ``timeout`` s passed (False). Other
        threads wait on ``event``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.event.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            look = LOOK_S if left is None else min(left, LOOK_S)
            readable, _, _ = select.select([self._read], [], [], look)  # pending handlers run once it returns
            if readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._read, 512)
        return True

    @property
    def name(self) -> str:
        """The handled signal's name (SIGTERM before any)."""
        return signal.Signals(self.signum or signal.SIGTERM).name

    def restore(self) -> None:
        """Put back the handlers and the wakeup fd found at ``install``."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
        if self._write >= 0:
            signal.set_wakeup_fd(self._previous_fd)
            for fd in (self._read, self._write):
                os.close(fd)
            self._read = self._write = -1

    def __enter__(self) -> Termination:
        return self.install()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.restore()
