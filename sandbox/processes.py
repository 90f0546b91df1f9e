"""Child processes that cannot outlive their parent.

Each child runs in its own session (so signals to the terminal's process group do not reach it and it can be
stopped as a group) and asks the kernel for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``). The
death signal fires when the *thread* that forked the child exits, so spawn children from a thread that lives as
long as the process: the main thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    log_file: Path
    env: Mapping[str, str] = field(default_factory=dict)


def _die_with_parent_hook() -> Callable[[], None]:
    """A ``preexec_fn`` (runs in the child between fork and exec) that sets the parent-death signal."""
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def hook() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(126)

    return hook


class ChildProcess:
    """A started child: its log file, liveness, and a stop that escalates from SIGTERM to SIGKILL."""

    def __init__(self, spec: ProcessSpec, popen: subprocess.Popen[bytes]) -> None:
        self.spec = spec
        self._popen = popen

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        return self._popen

    @property
    def log_file(self) -> Path:
        return self.spec.log_file

    def alive(self) -> bool:
        return self._popen.poll() is None

    def exit_code(self) -> int | None:
        return self._popen.poll()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the child's process group, wait up to ``timeout`` s, then SIGKILL it; returns the exit code."""
        if self._popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                return self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
        return self._popen.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)


def spawn(spec: ProcessSpec) -> ChildProcess:
    """Start ``spec`` with stdout and stderr appended to its log file."""
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **spec.env}
    with open(spec.log_file, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(spec.argv)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent_hook(),
        )
    return ChildProcess(spec, popen)
