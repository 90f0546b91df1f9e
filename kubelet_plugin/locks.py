"""Per-GPU locks: claims on different GPUs prepare concurrently; claims on one GPU take turns.
Per-claim locks: a prepare and an unprepare (or a retried prepare) of one claim never overlap."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator


class Busy(Exception):
    """Another call holds the lock (asked for with ``wait=False``)."""


def _take(lock: threading.Lock, wait: bool) -> None:
    if not lock.acquire(blocking=wait):
        raise Busy


class GpuLocks:
    def __init__(self) -> None:
        self._locks: dict[int, threading.Lock] = {}
        self._claims: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def claim(self, uid: str, wait: bool = True) -> Iterator[None]:
        """The claim's lock; ``wait=False``: ``Busy`` at once when another call holds it."""
        with self._guard:
            lock = self._claims.setdefault(uid, threading.Lock())
        _take(lock, wait)
        try:
            yield
        finally:
            lock.release()

    def _lock(self, gpu: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(gpu, threading.Lock())

    @contextlib.contextmanager
    def hold(self, gpus: Iterable[int], wait: bool = True) -> Iterator[None]:
        """Hold the locks of these GPUs, taken in index order (no deadlock between claims); ``wait=False``:
        ``Busy`` at once (none kept) when another call holds one."""
        with contextlib.ExitStack() as stack:
            for gpu in sorted(set(gpus)):
                lock = self._lock(gpu)
                _take(lock, wait)
                stack.callback(lock.release)
            yield
