"""The simulated machine's state file, shared by every process that loads the simulated NVML.

Reads are lock-free (the file is only ever replaced whole by ``rename``) and cached on the file's
identity; writes take an exclusive ``flock`` on ``<state>.lock``, re-read, change, write a temporary
file (compact JSON) and rename. A process killed at any point leaves either the old or the new state.
No fsync: a simulated GPU's MIG partitions should not outlive a reboot any more than a real one's, and a
killed process loses nothing the page cache holds (half of a simulated MIG prepare was these fsyncs).

``DRA_SIM_NVML_WRITE_DELAY`` (seconds) pauses half-way through writing the temporary file: the
crash test uses it to kill a process in the middle of a MIG operation.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from nvml_sim.machine import State

WRITE_DELAY_ENV = "DRA_SIM_NVML_WRITE_DELAY"


class StateStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._cached: tuple[tuple[int, int, int], State] | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> State:
        """The current state (do not modify it: use ``mutate``)."""
        st = os.stat(self.path)
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, json.loads(self.path.read_bytes()))
        return self._cached[1]

    @contextlib.contextmanager
    def mutate(self) -> Iterator[State]:
        """Exclusive read-modify-write. Changes are committed only if the block exits normally."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = copy.deepcopy(self.read()) if self.path.exists() else {}
                yield state
                self._write(state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def replace(self, state: State) -> None:
        with self.mutate() as current:
            current.clear()
            current.update(state)

    def _write(self, state: State) -> None:
        for stale in self.path.parent.glob(self.path.name + ".tmp.*"):
            stale.unlink(missing_ok=True)  # left by a process killed mid-write; we hold the lock
        data = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        tmp = self.path.with_name(f"{self.path.name}.tmp.{os.getpid()}")
        delay = float(os.environ.get(WRITE_DELAY_ENV, "0") or 0)
        with open(tmp, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            if delay:
                f.flush()
                time.sleep(delay)
            f.write(data[half:])
        os.rename(tmp, self.path)
        self._cached = None
