"""Per-GPU locks: claims on different GPUs prepare concurrently; claims on one GPU take turns.
Per-claim locks: a prepare and an unprepare (or a retried prepare) of one claim never overlap."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator


class GpuLocks:
    def __init__(self) -> None:
        self._locks: dict[int, threading.Lock] = {}
        self._claims: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def claim(self, uid: str) -> Iterator[None]:
        with self._guard:
            lock = self._claims.setdefault(uid, threading.Lock())
        with lock:
            yield

    def _lock(self, gpu: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(gpu, threading.Lock())

    @contextlib.contextmanager
    def hold(self, gpus: Iterable[int]) -> Iterator[None]:
        """Hold the locks of these GPUs, taken in index order (no deadlock between claims)."""
        with contextlib.ExitStack() as stack:
            for gpu in sorted(set(gpus)):
                stack.enter_context(self._lock(gpu))
            yield
