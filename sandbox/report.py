"""``dra-gpu sandbox status|kubeconfig``: what a running sandbox is, read from its status file.

``sandbox status -o json`` prints the status document (sandbox/status.py) with ``metrics``: each node's plugin
metrics URL (sandbox/node_metrics.py); nothing goes to standard output when no sandbox runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sandbox import instance, mode_controller, node_metrics
from sandbox.layout import Layout, default_workdir
from sandbox.status import State, Status, read_status


def _say(line: str) -> None:
    print(line, flush=True)


def sandbox_status(workdir: Path | None = None, output: str = "text") -> int:
    """Print a summary (``output`` text) or the status document (json); exit 0 when a sandbox is running and ready,
    1 otherwise. In JSON, messages about a sandbox that is not there go to standard error."""
    layout = Layout((workdir or default_workdir()).resolve())
    status = read_status(layout)
    say = _say if output == "text" else _complain
    if not instance.is_running(layout):
        say(f"no sandbox running in {layout.root}")
        if status and status.state is State.FAILED:
            say(f"the last one failed: {status.message}")
        return 1
    if status is None:
        say(f"a sandbox in {layout.root} is starting (no status yet)")
        return 1
    metrics = node_metrics.urls(layout, status.nodes)
    explain = mode_controller.explain_url(layout) if status.profile else None
    if output == "json":
        _say(json.dumps(status_document(status, metrics, explain), indent=2))
    else:
        _say(render_status(status, metrics, explain))
    return 0 if status.state is State.READY else 1


def _complain(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def status_document(status: Status, metrics: dict[str, str], explain: str | None = None) -> dict[str, Any]:
    """The status file's document plus where each node's plugin serves its metrics (node -> URL) and where the
    mode controller answers ``dra-gpu explain --controller`` (null without one)."""
    return {**status.to_json(), "metrics": dict(metrics), "explain": explain}


def sandbox_kubeconfig(workdir: Path | None = None) -> int:
    """Print the admin kubeconfig path of the running sandbox."""
    layout = Layout((workdir or default_workdir()).resolve())
    status = read_status(layout)
    if not instance.is_running(layout) or status is None or status.state is not State.READY:
        print(f"no ready sandbox in {layout.root}; start one with: dra-gpu sandbox up", file=sys.stderr)
        return 1
    _say(status.kubeconfig)
    return 0


DRIVERS = {"process": "plugin as host processes", "helm": "plugin from the Helm chart's DaemonSet"}


def render_status(status: Status, metrics: dict[str, str] | None = None, explain: str | None = None) -> str:
    gates = status.feature_gates
    lines = [
        f"sandbox in {status.workdir}: {status.state.value} (since {status.ready_at or status.started_at}), "
        f"profile {status.profile or 'none'}, mode {status.mode}, {status.kubelet} kubelet, {DRIVERS.get(status.driver, status.driver)}",
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
    for i, (node, url) in enumerate(sorted((metrics or {}).items())):
        lines.append(f"  {'metrics' if i == 0 else '':<14} {node}  {url}")
    if explain:
        lines.append(f"  explain        dra-gpu explain pod NAME --controller {explain}")
    lines.append("  processes")
    for p in status.processes:
        state = "running" if instance.alive(instance.PidRecord(p.pid, p.start_ticks)) else "EXITED"
        lines.append(f"    {p.name:<24} pid {p.pid:<8} {state:<8} {p.log}")
    if status.message and status.state is not State.READY:
        lines.append(f"  message        {status.message}")
    return "\n".join(lines)
