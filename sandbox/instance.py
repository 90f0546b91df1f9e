"""Is a sandbox running in a work directory? The supervisor lock, the pid file, and process liveness.

A running supervisor holds an exclusive ``flock`` on ``<workdir>/supervisor.lock`` for its whole life; the kernel
drops it when the process dies, however it dies, so "locked" means "running" without trusting any pid.
``dra-gpu sandbox up`` takes the lock first and hands the locked descriptor to the supervisor it starts, so two
concurrent ``up`` calls cannot both start one.

Processes are identified by pid *and* start time (``/proc/<pid>/stat`` field 22) so a reused pid is not mistaken
for ours; zombies count as dead.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from sandbox.atomic import write_atomic
from sandbox.layout import Layout


def try_lock(layout: Layout) -> int | None:
    """An open descriptor holding the sandbox lock, or None when a sandbox holds it already."""
    layout.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_running(layout: Layout) -> bool:
    """True while some process holds the sandbox lock."""
    if not layout.lock_file.exists():
        return False
    fd = try_lock(layout)
    if fd is None:
        return True
    os.close(fd)
    return False


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it does not exist or is a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # fields after "pid (comm) "; comm may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(record: PidRecord) -> bool:
    return start_ticks(record.pid) == record.start_ticks


def own_record() -> PidRecord:
    pid = os.getpid()
    ticks = start_ticks(pid)
    assert ticks is not None
    return PidRecord(pid, ticks)


def write_pid_file(layout: Layout, record: PidRecord) -> None:
    write_atomic(layout.pid_file, f"{record.pid} {record.start_ticks}\n".encode())


def read_pid_file(layout: Layout) -> PidRecord | None:
    try:
        pid, ticks = layout.pid_file.read_text().split()
        return PidRecord(int(pid), int(ticks))
    except (OSError, ValueError):
        return None
