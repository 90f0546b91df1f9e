"""``dra-gpu sandbox up|down|status|kubeconfig`` as plain functions: typed parameters in, exit code out, text on
stdout. The argument parser lives in cli.

``up`` locates (or builds) the binaries in the foreground, then starts a detached supervisor (see supervisor.py)
that owns the sandbox, and follows its log until the status says ready (exit 0) or failed (exit 1).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sandbox import instance
from sandbox.binaries import Binaries, find_or_build
from sandbox.errors import SandboxError
from sandbox.layout import Layout, default_workdir
from sandbox.status import State, Status, read_status

UP_TIMEOUT_S = 600.0
DOWN_TIMEOUT_S = 30.0
POLL_S = 0.25


def _say(line: str) -> None:
    print(line, flush=True)


def sandbox_up(
    profile: str,
    nodes: int,
    workdir: Path | None = None,
    *,
    timeout: float = UP_TIMEOUT_S,
    owner_pid: int | None = None,
) -> int:
    """Start a sandbox with ``nodes`` simulated nodes (``sim-node-0`` …) unless one already runs there.

    With ``owner_pid`` the sandbox stops by itself once that process is gone (used by the test fixtures).
    """
    layout = Layout((workdir or default_workdir()).resolve())
    if instance.is_running(layout):
        return _already_running(layout)
    if nodes < 0:
        print(f"--nodes must be 0 or more, not {nodes}", flush=True)
        return 2
    try:
        binaries = find_or_build(lambda line: _say(f"  {line}"))
    except SandboxError as exc:
        _say(f"sandbox: {exc}")
        return 1
    _say(f"  binaries: etcd {binaries.etcd}, Kubernetes {binaries.kube_apiserver.parent}")
    lock_fd = instance.try_lock(layout)
    if lock_fd is None:
        return _already_running(layout)
    try:
        offset = _start_supervisor(layout, profile, nodes, binaries, lock_fd, owner_pid)
    finally:
        os.close(lock_fd)
    return _follow_start(layout, offset, timeout)


def sandbox_down(workdir: Path | None = None, *, timeout: float = DOWN_TIMEOUT_S) -> int:
    """Stop the sandbox (SIGTERM, then SIGKILL after ``timeout`` s) and check no process of it is left."""
    layout = Layout((workdir or default_workdir()).resolve())
    status = read_status(layout)
    if not instance.is_running(layout):
        leftovers = _kill_leftovers(status)
        _say(
            f"no sandbox running in {layout.root}"
            + (f" (killed {leftovers} leftover process(es))" if leftovers else "")
        )
        return 0
    record = instance.read_pid_file(layout)
    if record is None or not instance.alive(record):
        _say(f"a sandbox in {layout.root} is starting and has not written its pid file yet; try again shortly")
        return 1
    _say(f"stopping the sandbox in {layout.root} (supervisor pid {record.pid})")
    _signal(record, signal.SIGTERM)
    if not _wait(lambda: not instance.is_running(layout), timeout):
        _say(f"the supervisor did not stop within {timeout:.0f} s; killing it")
        _signal(record, signal.SIGKILL)
        _wait(lambda: not instance.is_running(layout), 5.0)
    status = read_status(layout) or status
    procs = status.processes if status else ()
    if not _wait(lambda: not any(instance.alive(instance.PidRecord(p.pid, p.start_ticks)) for p in procs), 10.0):
        _kill_leftovers(status)
    left = [p for p in procs if instance.alive(instance.PidRecord(p.pid, p.start_ticks))]
    if left:
        names = ", ".join(f"{p.name} (pid {p.pid})" for p in left)
        _say(f"stopped, but these processes survived SIGKILL: {names}")
        return 1
    _say(f"stopped ({len(procs)} process(es) ended)")
    return 0


def sandbox_status(workdir: Path | None = None) -> int:
    """Print a summary; exit 0 when a sandbox is running and ready, 1 otherwise."""
    layout = Layout((workdir or default_workdir()).resolve())
    status = read_status(layout)
    if not instance.is_running(layout):
        _say(f"no sandbox running in {layout.root}")
        if status and status.state is State.FAILED:
            _say(f"the last one failed: {status.message}")
        return 1
    if status is None:
        _say(f"a sandbox in {layout.root} is starting (no status yet)")
        return 1
    _say(render_status(status))
    return 0 if status.state is State.READY else 1


def sandbox_kubeconfig(workdir: Path | None = None) -> int:
    """Print the admin kubeconfig path of the running sandbox."""
    layout = Layout((workdir or default_workdir()).resolve())
    status = read_status(layout)
    if not instance.is_running(layout) or status is None or status.state is not State.READY:
        print(f"no ready sandbox in {layout.root}; start one with: dra-gpu sandbox up", file=sys.stderr)
        return 1
    _say(status.kubeconfig)
    return 0


def render_status(status: Status) -> str:
    gates = status.feature_gates
    lines = [
        f"sandbox in {status.workdir}: {status.state.value} (since {status.ready_at or status.started_at}), "
        f"profile {status.profile or '-'}",
        f"  API server     {status.server or '-'}",
        f"  kubeconfig     {status.kubeconfig or '-'}",
        f"  nodes          {', '.join(status.nodes) or '-'}",
        f"  start-up       {status.startup_seconds if status.startup_seconds is not None else '-'} s",
        f"  resource.k8s.io versions  {', '.join(status.resource_versions) or '-'}",
    ]
    if gates:
        lines.append(f"  feature gates  set: {', '.join(gates.enabled) or '-'}")
        lines.append(f"                 GA (always on): {', '.join(gates.locked_on) or '-'}")
        if gates.unavailable:
            lines.append(f"                 unavailable: {', '.join(gates.unavailable)}")
    lines.append("  processes")
    for p in status.processes:
        state = "running" if instance.alive(instance.PidRecord(p.pid, p.start_ticks)) else "EXITED"
        lines.append(f"    {p.name:<24} pid {p.pid:<8} {state:<8} {p.log}")
    if status.message and status.state is not State.READY:
        lines.append(f"  message        {status.message}")
    return "\n".join(lines)


def _already_running(layout: Layout) -> int:
    status = read_status(layout)
    state = status.state.value if status else "starting"
    _say(f"a sandbox is already running in {layout.root} ({state}); not starting another")
    if status and status.kubeconfig:
        _say(f"  export KUBECONFIG={status.kubeconfig}")
    return 0


def _start_supervisor(
    layout: Layout, profile: str, nodes: int, binaries: Binaries, lock_fd: int, owner_pid: int | None
) -> int:
    """Launch the detached supervisor; returns the size its log had before, where this run's lines begin."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.status_file.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "sandbox.supervisor",
        "run",
        "--detach",
        f"--workdir={layout.root}",
        f"--profile={profile}",
        f"--nodes={nodes}",
        f"--lock-fd={lock_fd}",
        f"--etcd={binaries.etcd}",
        f"--kube-apiserver={binaries.kube_apiserver}",
        f"--kube-scheduler={binaries.kube_scheduler}",
        f"--kube-controller-manager={binaries.kube_controller_manager}",
    ]
    if owner_pid is not None:
        argv.append(f"--owner-pid={owner_pid}")
    with open(layout.supervisor_log, "ab") as log:
        offset = log.tell()
        launcher = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(lock_fd,),
            start_new_session=True,
        )
        launcher.wait()  # returns at once: the supervisor forks and its first process exits
    return offset


def _follow_start(layout: Layout, offset: int, timeout: float) -> int:
    """Echo the supervisor's log from ``offset`` until the status is ready or failed, or the supervisor is gone."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            offset = _echo_new_lines(layout.supervisor_log, offset)
            running = instance.is_running(layout)  # before reading the status: a last word written at exit counts
            status = read_status(layout)
            if status and status.state is State.READY:
                _say(_usage(layout, status))
                return 0
            if status and status.state is State.FAILED:
                _echo_new_lines(layout.supervisor_log, offset)
                _say(f"sandbox failed to start: {status.message}\n  logs: {layout.logs}")
                return 1
            if not running:
                _echo_new_lines(layout.supervisor_log, offset)
                _say(f"the supervisor exited before the sandbox was ready; see {layout.supervisor_log}")
                return 1
            if time.monotonic() > deadline:
                _say(f"the sandbox was not ready within {timeout:.0f} s; stopping it (logs: {layout.logs})")
                sandbox_down(layout.root)
                return 1
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        _say("interrupted; stopping the sandbox")
        sandbox_down(layout.root)
        return 130


def _echo_new_lines(path: Path, offset: int) -> int:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset
    complete = data[: data.rfind(b"\n") + 1]
    for line in complete.decode(errors="replace").splitlines():
        _say(f"  {line}")
    return offset + len(complete)


def _usage(layout: Layout, status: Status) -> str:
    env = "" if layout.root == default_workdir().resolve() else f"DRA_SANDBOX_DIR={layout.root} "
    return "\n".join(
        [
            f"sandbox ready: control plane up in {status.startup_seconds} s, nodes: {', '.join(status.nodes) or 'none'}",
            f"  API server: {status.server}",
            f"  logs:       {layout.logs}",
            "use it with:",
            f"  export KUBECONFIG={status.kubeconfig}",
            "  kubectl get nodes",
            f"stop it with: {env}dra-gpu sandbox down",
        ]
    )


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def _signal(record: instance.PidRecord, sig: signal.Signals) -> None:
    if instance.alive(record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, sig)


def _kill_leftovers(status: Status | None) -> int:
    """SIGKILL processes the status lists that are still alive (only possible after a crash); returns how many."""
    killed = 0
    for p in status.processes if status else ():
        record = instance.PidRecord(p.pid, p.start_ticks)
        if instance.alive(record):
            _signal(record, signal.SIGKILL)
            killed += 1
    return killed
