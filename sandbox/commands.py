"""``dra-gpu sandbox up|down|status|kubeconfig`` as plain functions: typed parameters in, exit code out, text on
stdout. The argument parser lives in cli.

``up`` locates (or builds) the binaries in the foreground, then starts a detached supervisor (see supervisor.py)
that owns the sandbox, and follows its log until the status says ready (exit 0) or failed (exit 1). Invalid
arguments, or a sandbox already running there with other arguments, exit 2 with one line on stderr.
With ``driver="helm"`` (real nodes only) it also finds or builds helm and the simulated-GPU image in the foreground
(the supervisor's namespace has no network) and the supervisor installs the chart instead of starting the plugin
as a host process (realnode/helm_driver.py).
``down`` stops it and removes the node state (``nodestate``) unless asked to keep it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from api.errors import ConfigError
from api.names import DEFAULT_DRIVER_NAME
from api.partitioning import parse_mode
from kubelet_plugin.settings import SOCKET_PATH_MAX, socket_paths
from nvml_sim.hardware import MACHINE_PROFILES
from sandbox import instance, nodestate
from sandbox.binaries import Binaries, find_or_build
from sandbox.errors import SandboxError
from sandbox.layout import Layout, default_workdir
from sandbox.realnode import cleanup, helm_driver, launch
from sandbox.status import State, Status, read_status
from sandbox.supervisor import node_names

UP_TIMEOUT_S = 600.0
DOWN_TIMEOUT_S = 30.0
STATUS_WAIT_S = 5.0
POLL_S = 0.25


def _say(line: str) -> None:
    print(line, flush=True)


def _complain(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Request:
    """What ``up`` was asked for: a running sandbox satisfies it only if it was started with the same."""

    profile: str  # "" for nodes without GPUs
    nodes: int
    mode: str  # canonical (str of api.partitioning's mode)
    kubelet: str = "simulated"
    driver: str = "process"  # "helm": the chart's DaemonSet runs the plugin

    @classmethod
    def of(cls, status: Status) -> Request:
        return cls(status.profile, status.node_count, status.mode, status.kubelet, status.driver)

    def flags(self) -> dict[str, str]:
        return {
            "--profile": self.profile or "none",
            "--nodes": str(self.nodes),
            "--mode": self.mode,
            "--kubelet": self.kubelet,
            "--driver": self.driver,
        }


def _request(
    profile: str, nodes: int, mode: str | None, kubelet: str | None = "simulated", driver: str = "process"
) -> Request | str:
    """The request in canonical form, or what is wrong with it."""
    if profile and profile not in MACHINE_PROFILES:
        return f"--profile: unknown profile {profile!r}; valid profiles: none, {', '.join(sorted(MACHINE_PROFILES))}"
    if nodes < 0:
        return f"--nodes must be 0 or more, not {nodes}"
    problem = helm_driver.driver_problem(driver, kubelet, profile)
    if problem:
        return problem
    if driver == "helm":
        kubelet = "real"  # where the host cannot run real nodes, resolve_kubelet says why
    try:
        canonical = str(parse_mode(mode or "whole", "--mode"))
        chosen, notice = launch.resolve_kubelet(kubelet)
    except (ConfigError, ValueError) as exc:
        return str(exc)
    if notice:
        _say(notice)
    return Request(profile, nodes, canonical, chosen, driver)


PID_MAX = 4194304  # the plugin's default pod UID is its PID: the longest one Linux hands out


def _socket_problem(layout: Layout, request: Request) -> str | None:
    """Why the requested nodes' plugins could not serve, or None: a Unix socket path has at most 107 bytes."""
    if not request.profile or not request.nodes or request.kubelet == "real":  # real: in /var/lib/kubelet
        return None
    node = layout.node(node_names(request.nodes)[-1])
    sockets = socket_paths(node / "plugins", node / "plugins_registry", DEFAULT_DRIVER_NAME, str(PID_MAX))
    longest = max(sockets, key=lambda s: len(os.fsencode(s)))
    if len(os.fsencode(longest)) <= SOCKET_PATH_MAX:
        return None
    return (
        f"--workdir: {layout.root} is too long for the plugins' sockets ({longest} would be "
        f"{len(os.fsencode(longest))} bytes; Unix sockets allow {SOCKET_PATH_MAX}): use a shorter work directory"
    )


def sandbox_up(
    profile: str,
    nodes: int,
    workdir: Path | None = None,
    *,
    mode: str | None = None,
    timeout: float = UP_TIMEOUT_S,
    owner_pid: int | None = None,
    kubelet: str | None = "simulated",
    driver: str = "process",
) -> int:
    """Start a sandbox with ``nodes`` simulated nodes (``sim-node-0`` …) of ``profile`` ("" for nodes without
    GPUs), every GPU in ``mode`` (default whole), unless one already runs there. ``kubelet``: "real" (the real
    kubelet and containerd, see sandbox/realnode), "simulated", or None for real where the host allows it.
    ``driver``: "process" (the plugin as a host process next to each node) or "helm" (real nodes: the project's
    chart and simulated-GPU image).

    Exit 0 when the sandbox is ready, also when one started with the same arguments already runs; 2 when the
    arguments are invalid or the running one was started with others (the message names the difference); 1 when
    it fails to start. With ``owner_pid`` the sandbox stops by itself once that process is gone (the test fixtures).
    """
    layout = Layout((workdir or default_workdir()).resolve())
    request = _request(profile, nodes, mode, kubelet, driver)
    if isinstance(request, str):
        _complain(request)
        return 2
    if instance.is_running(layout):
        return _already_running(layout, request, timeout)
    problem = _socket_problem(layout, request)
    if problem is not None:
        _complain(problem)
        return 2
    try:
        binaries = find_or_build(lambda line: _say(f"  {line}"))
        prepared = helm_driver.prepare(lambda line: _say(f"  {line}")) if request.driver == "helm" else None
    except SandboxError as exc:
        _say(f"sandbox: {exc}")
        return 1
    _say(f"  binaries: etcd {binaries.etcd}, Kubernetes {binaries.kube_apiserver.parent}")
    lock_fd = instance.try_lock(layout)
    if lock_fd is None:
        return _already_running(layout, request, timeout)
    try:
        offset = _start_supervisor(layout, request, binaries, lock_fd, owner_pid, prepared)
    finally:
        os.close(lock_fd)
    return _follow_start(layout, offset, timeout)


def sandbox_down(workdir: Path | None = None, *, timeout: float = DOWN_TIMEOUT_S, keep_state: bool = False) -> int:
    """Stop the sandbox (SIGTERM, then SIGKILL after ``timeout`` s), check no process of it is left, and remove
    the node state (simulated GPUs, plugin checkpoints, CDI specs) unless ``keep_state``; also when none runs."""
    layout = Layout((workdir or default_workdir()).resolve())
    status = read_status(layout)
    if not instance.is_running(layout):
        leftovers = _kill_leftovers(status)
        if status:
            for problem in cleanup.sweep(status.netns, status.cgroup):
                _say(f"could not clean up: {problem}")
        _say(
            f"no sandbox running in {layout.root}"
            + (f" (killed {leftovers} leftover process(es))" if leftovers else "")
        )
        return _clean_node_state(layout, keep_state)
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
    problems = cleanup.sweep(status.netns, status.cgroup) if status else []
    if problems:
        _say(f"stopped, but could not clean up: {'; '.join(problems)}")
        return 1
    if left:
        names = ", ".join(f"{p.name} (pid {p.pid})" for p in left)
        _say(f"stopped, but these processes survived SIGKILL: {names}")
        return 1
    _say(f"stopped ({len(procs)} process(es) ended)")
    return _clean_node_state(layout, keep_state)


def _clean_node_state(layout: Layout, keep: bool) -> int:
    if keep:
        if layout.nodes.exists():
            _say(f"kept the node state in {layout.nodes} for the next up with the same profile")
        return 0
    try:
        removed = nodestate.remove(layout)
    except OSError as exc:
        _complain(f"could not remove the node state in {layout.nodes}: {exc}")
        return 1
    if removed:
        _say(f"removed the node state (simulated GPUs, plugin checkpoints, CDI specs) in {layout.nodes}")
    return 0


def _already_running(layout: Layout, request: Request, timeout: float) -> int:
    """Exit 0 if the running sandbox was started with ``request`` and is (or becomes) ready; 2 if with other
    arguments; 1 if it fails or cannot be told apart."""
    _wait(lambda: read_status(layout) is not None or not instance.is_running(layout), STATUS_WAIT_S)
    status = read_status(layout)
    if status is None:
        _complain(f"a sandbox is starting in {layout.root} but has not recorded its arguments; try again shortly")
        return 1
    running = Request.of(status)
    if running != request:
        have, want = running.flags(), request.flags()
        asked = " ".join(f"{k} {v}" for k, v in want.items() if have[k] != v)
        _complain(
            f"a sandbox is running in {layout.root} with {' '.join(f'{k} {v}' for k, v in have.items())}; "
            f"you asked for {asked}: run `dra-gpu sandbox down` first"
        )
        return 2
    if status.state is State.READY:
        _say(f"a sandbox with these arguments is already running in {layout.root}; not starting another")
        _say(f"  export KUBECONFIG={status.kubeconfig}")
        return 0
    _say(f"a sandbox with these arguments is {status.state.value} in {layout.root}; following it")
    return _follow_start(layout, _log_size(layout), timeout, owned=False)


def _log_size(layout: Layout) -> int:
    try:
        return layout.supervisor_log.stat().st_size
    except OSError:
        return 0


def _start_supervisor(
    layout: Layout,
    request: Request,
    binaries: Binaries,
    lock_fd: int,
    owner_pid: int | None,
    prepared: helm_driver.Prepared | None = None,
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
        f"--profile={request.profile}",
        f"--nodes={request.nodes}",
        f"--mode={request.mode}",
        f"--lock-fd={lock_fd}",
        f"--etcd={binaries.etcd}",
        f"--kube-apiserver={binaries.kube_apiserver}",
        f"--kube-scheduler={binaries.kube_scheduler}",
        f"--kube-controller-manager={binaries.kube_controller_manager}",
    ]
    if owner_pid is not None:
        argv.append(f"--owner-pid={owner_pid}")
    fds = [lock_fd]
    listener = None
    if request.kubelet == "real":
        listener, extra = launch.host_listener()
        argv = [*launch.supervisor_prefix(), *argv, *extra]
        if prepared is not None:
            argv += ["--driver=helm", f"--helm={prepared.helm}", f"--plugin-image={prepared.archive}"]
        fds.append(listener.fileno())
    with open(layout.supervisor_log, "ab") as log:
        offset = log.tell()
        launcher = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=tuple(fds),
            start_new_session=True,
        )
        launcher.wait()  # returns at once: the supervisor forks and its first process exits
    if listener is not None:
        listener.close()  # the supervisor holds its own copy
    return offset


def _follow_start(layout: Layout, offset: int, timeout: float, *, owned: bool = True) -> int:
    """Echo the supervisor's log from ``offset`` until the status is ready or failed, or the supervisor is gone.

    When ``owned`` (this call started it) the sandbox is stopped on timeout and on Ctrl-C."""
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
                if not owned:
                    _say(f"the sandbox was not ready within {timeout:.0f} s (logs: {layout.logs})")
                    return 1
                _say(f"the sandbox was not ready within {timeout:.0f} s; stopping it (logs: {layout.logs})")
                sandbox_down(layout.root)
                return 1
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        if not owned:
            return 130
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
