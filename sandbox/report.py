"""``dra-gpu sandbox status|kubeconfig``: what a running sandbox is, read from its status file."""

from __future__ import annotations

import sys
from pathlib import Path

from sandbox import instance
from sandbox.layout import Layout, default_workdir
from sandbox.status import State, Status, read_status


def _say(line: str) -> None:
    print(line, flush=True)


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
        f"profile {status.profile or 'none'}, mode {status.mode}, {status.kubelet} kubelet",
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
