"""MPS control daemons: one per MPS device, started, checked and stopped through the driver root's
``nvidia-cuda-mps-control``.

A daemon lives in its *pipe directory* (``CUDA_MPS_PIPE_DIRECTORY``; its log directory, ``CUDA_MPS_LOG_DIRECTORY``,
is ``<pipe>/log``) and serves the one CUDA device in its ``CUDA_VISIBLE_DEVICES`` (a GPU or MIG UUID). Starting
it, as NVIDIA's MPS documentation prescribes::

    CUDA_VISIBLE_DEVICES=<uuid> CUDA_MPS_PIPE_DIRECTORY=<pipe> CUDA_MPS_LOG_DIRECTORY=<pipe>/log \\
        nvidia-cuda-mps-control -d
    echo set_default_active_thread_percentage <n> | nvidia-cuda-mps-control          # same environment
    echo set_default_device_pinned_mem_limit <uuid or index> <MiB>M | nvidia-cuda-mps-control

and stopping it with ``echo quit | nvidia-cuda-mps-control``. ``-d`` detaches the daemon into a session of its
own, so it outlives the plugin *process* (signals to the plugin's process group do not reach it), but not the
plugin's *container*: it stays in that container's PID namespace and cgroup and dies with it, and start-up
(``mps_supervisor.reconcile``) starts it again (docs/kubelet-plugin.md). The daemon writes its PID to
``<pipe>/nvidia-cuda-mps-control.pid``, which is how a new plugin finds and adopts one that survived. A PID counts as the daemon
only while that process exists, is not a zombie and runs ``nvidia-cuda-mps-control`` (PIDs are reused).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubelet_plugin.sharing import MPS_CONTROL, DriverTools, ToolFailed

log = logging.getLogger(__name__)
PID_FILE = "nvidia-cuda-mps-control.pid"
MIB = 1024 * 1024
START_WAIT_S = 10.0  # for the PID file after -d
STOP_WAIT_S = 10.0  # for the daemon to exit after quit (then SIGKILL)


@dataclass(frozen=True)
class DaemonSpec:
    """What one daemon serves and the defaults it hands its MPS servers (None / empty: MPS's own)."""

    pipe_directory: Path
    device_uuid: str  # CUDA_VISIBLE_DEVICES of the daemon: a GPU or MIG UUID
    active_thread_percentage: int | None = None
    pinned_memory_limits: tuple[tuple[str, int], ...] = ()  # (device UUID or index as the daemon sees it, bytes)

    @property
    def log_directory(self) -> Path:
        return self.pipe_directory / "log"

    def commands(self) -> list[str]:
        """The lines written to ``nvidia-cuda-mps-control`` once the daemon runs."""
        out = []
        if self.active_thread_percentage is not None:
            out.append(f"set_default_active_thread_percentage {self.active_thread_percentage}")
        for device, limit in self.pinned_memory_limits:
            out.append(f"set_default_device_pinned_mem_limit {device} {max(limit // MIB, 1)}M")
        return out


def _is_daemon(pid: int) -> bool:
    """``pid`` is a live (not zombie) ``nvidia-cuda-mps-control`` process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
    return state not in ("Z", "X") and MPS_CONTROL.encode() in cmdline


def daemon_pid(pipe_directory: Path) -> int | None:
    """The PID of the daemon running in ``pipe_directory``; None when none runs (a stale PID file is ignored)."""
    try:
        pid = int((pipe_directory / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and _is_daemon(pid) else None


def _wait(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class MpsControl:
    """Starts and stops the daemons of the pipe directories under ``root`` with the driver root's tool."""

    def __init__(self, tools: DriverTools, root: Path) -> None:
        self.tools = tools
        self.root = root

    def available(self) -> bool:
        return MPS_CONTROL in self.tools.binaries

    def _env(self, pipe: Path, device_uuid: str | None = None) -> dict[str, str]:
        env = {"CUDA_MPS_PIPE_DIRECTORY": str(pipe), "CUDA_MPS_LOG_DIRECTORY": str(pipe / "log")}
        if device_uuid is not None:
            env["CUDA_VISIBLE_DEVICES"] = device_uuid
        return env

    def start(self, spec: DaemonSpec) -> bool:
        """Start the daemon of ``spec`` unless it runs; True when it was started. All or nothing: a daemon that
        started but did not take its settings is stopped again."""
        pipe = spec.pipe_directory
        if daemon_pid(pipe) is not None:
            return False
        purpose = f"MPS on {spec.device_uuid}"
        self.tools.path(MPS_CONTROL, purpose)  # ToolMissing before anything is made
        spec.log_directory.mkdir(parents=True, exist_ok=True)
        (pipe / PID_FILE).unlink(missing_ok=True)  # a dead daemon's
        env = self._env(pipe, spec.device_uuid)
        self.tools.run(MPS_CONTROL, purpose, ["-d"], env=env, detaches=True)
        try:
            if not _wait(lambda: daemon_pid(pipe) is not None, START_WAIT_S):
                raise ToolFailed(
                    f"{MPS_CONTROL} -d for {spec.device_uuid} exited but no daemon runs in {pipe} after "
                    f"{START_WAIT_S:.0f}s (no live PID in {PID_FILE}); see {spec.log_directory}/control.log"
                )
            for command in spec.commands():
                self.tools.run(MPS_CONTROL, purpose, [], stdin=command + "\n", env=env)
        except BaseException:
            self.stop(pipe)
            raise
        log.info("MPS control daemon %s started for %s in %s", daemon_pid(pipe), spec.device_uuid, pipe)
        return True

    def stop(self, pipe: Path) -> bool:
        """Stop the daemon of ``pipe`` (``quit``; SIGKILL if it does not exit) and remove the directory.
        Idempotent; True when a daemon was running."""
        pid = daemon_pid(pipe)
        if pid is not None:
            if self.available():
                try:
                    self.tools.run(MPS_CONTROL, f"stopping the MPS daemon in {pipe}", [], "quit\n", self._env(pipe))
                except ToolFailed as exc:
                    log.warning("%s; killing the daemon (PID %d)", exc, pid)
            if not _wait(lambda: not _is_daemon(pid), STOP_WAIT_S if self.available() else 0):
                log.warning("MPS control daemon %d in %s did not quit; killing it", pid, pipe)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if not _wait(lambda: not _is_daemon(pid), 5.0):
                    raise ToolFailed(f"the MPS control daemon {pid} in {pipe} survives SIGKILL")
            log.info("MPS control daemon %d in %s stopped", pid, pipe)
        shutil.rmtree(pipe, ignore_errors=True)
        return pid is not None

    def directories(self) -> dict[Path, int | None]:
        """Every pipe directory under the root, with the PID of its running daemon (None: none runs)."""
        try:
            entries = sorted(p for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return {}
        return {p: daemon_pid(p) for p in entries}
