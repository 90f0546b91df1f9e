"""The status document a sandbox supervisor keeps in ``<workdir>/status.json`` (versioned, written atomically).

Only the supervisor writes it; ``dra-gpu sandbox up|status|down`` and the pytest fixture read it. Whether the
supervisor is actually alive is decided by :mod:`sandbox.instance`, not by this file.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from sandbox.atomic import write_atomic
from sandbox.featuregates import FeatureGates
from sandbox.layout import Layout

API_VERSION = "sandbox.dra-driver.dev/v1"
KIND = "SandboxStatus"


class State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ProcessInfo:
    """A process the supervisor started: ``start_ticks`` (from /proc) tells it apart from a reused pid."""

    name: str
    pid: int
    start_ticks: int
    log: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "startTicks": self.start_ticks, "log": self.log}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ProcessInfo:
        return cls(str(doc["name"]), int(doc["pid"]), int(doc["startTicks"]), str(doc["log"]))


@dataclass(frozen=True)
class Status:
    state: State
    workdir: str
    profile: str
    node_count: int
    supervisor_pid: int
    supervisor_start_ticks: int
    started_at: str
    mode: str = "whole"  # the GPU mode of every node (``up --mode``)
    message: str = ""
    ready_at: str = ""
    startup_seconds: float | None = None
    kubeconfig: str = ""
    server: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    nodes: tuple[str, ...] = ()
    processes: tuple[ProcessInfo, ...] = ()
    feature_gates: FeatureGates | None = None
    runtime_config: str = ""
    resource_versions: tuple[str, ...] = ()
    kubelet: str = "simulated"  # "real": the real kubelet and containerd (sandbox/realnode)
    cgroup: str = ""  # real nodes: the sandbox's cgroup in every hierarchy (realnode/cgroups.py)
    netns: int = 0  # real nodes: inode of the sandbox's network namespace (down kills what is left in it)
    driver: str = "process"  # how the plugin runs: "process" (node agents) or "helm" (the chart's DaemonSet)

    def to_json(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "state": self.state.value,
            "workdir": self.workdir,
            "profile": self.profile,
            "nodeCount": self.node_count,
            "mode": self.mode,
            "supervisor": {"pid": self.supervisor_pid, "startTicks": self.supervisor_start_ticks},
            "startedAt": self.started_at,
            "message": self.message,
            "readyAt": self.ready_at,
            "startupSeconds": self.startup_seconds,
            "kubeconfig": self.kubeconfig,
            "server": self.server,
            "ports": dict(self.ports),
            "nodes": list(self.nodes),
            "processes": [p.to_json() for p in self.processes],
            "featureGates": self.feature_gates.to_json() if self.feature_gates else None,
            "runtimeConfig": self.runtime_config,
            "resourceVersions": list(self.resource_versions),
            "kubelet": self.kubelet,
            "cgroup": self.cgroup,
            "netns": self.netns,
            "driver": self.driver,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Status:
        if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
            raise ValueError(f"not a {API_VERSION} {KIND} document")
        gates = doc.get("featureGates")
        return cls(
            state=State(doc["state"]),
            workdir=str(doc["workdir"]),
            profile=str(doc["profile"]),
            node_count=int(doc["nodeCount"]),
            supervisor_pid=int(doc["supervisor"]["pid"]),
            supervisor_start_ticks=int(doc["supervisor"]["startTicks"]),
            started_at=str(doc["startedAt"]),
            mode=str(doc.get("mode", "whole")),
            message=str(doc.get("message", "")),
            ready_at=str(doc.get("readyAt", "")),
            startup_seconds=doc.get("startupSeconds"),
            kubeconfig=str(doc.get("kubeconfig", "")),
            server=str(doc.get("server", "")),
            ports={str(k): int(v) for k, v in doc.get("ports", {}).items()},
            nodes=tuple(doc.get("nodes", ())),
            processes=tuple(ProcessInfo.from_json(p) for p in doc.get("processes", ())),
            feature_gates=FeatureGates.from_json(gates) if gates else None,
            runtime_config=str(doc.get("runtimeConfig", "")),
            resource_versions=tuple(doc.get("resourceVersions", ())),
            kubelet=str(doc.get("kubelet", "simulated")),
            cgroup=str(doc.get("cgroup", "")),
            netns=int(doc.get("netns", 0)),
            driver=str(doc.get("driver", "process")),
        )


def write_status(layout: Layout, status: Status) -> None:
    write_atomic(layout.status_file, (json.dumps(status.to_json(), indent=2) + "\n").encode())


def read_status(layout: Layout) -> Status | None:
    """The last status written, or None when there is none (or it is unreadable: treat as none)."""
    try:
        return Status.from_json(json.loads(layout.status_file.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
