"""The supervisor's side of real nodes: start one node agent per node and wait for it, stop them in order.

Called by the supervisor, which already runs in the sandbox's network and mount namespace (``up`` started it
under ``unshare``). ``start`` gives every node a client certificate of the sandbox CA (``system:node:<name>``,
so the Node authorizer and NodeRestriction apply), writes its :class:`~sandbox.realnode.node.AgentSpec` and
starts its agent in a mount namespace of its own, then waits until every node is Ready and, with GPUs, its
plugin has published slices. ``stop`` deletes every pod first (the kubelet unprepares their claims before the
pod object goes), then stops the agents and removes what is left in the sandbox's cgroups.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dra_driver.k8s import Kube
from nvml_sim.control import SimulatedMachine
from sandbox.binaries import NodeBinaries
from sandbox.errors import SandboxError
from sandbox.images import PAUSE_IMAGE, ImageArchive
from sandbox.kubeconfig import write_kubeconfig
from sandbox.layout import Layout
from sandbox.pki import Pki, issue_client_cert, node_identity
from sandbox.processes import ChildProcess, ProcessSpec, spawn
from sandbox.realnode import cgroups, host
from sandbox.realnode.node import AgentSpec

READY_TIMEOUT_S = 180.0
POD_DELETE_TIMEOUT_S = 45.0

Progress = Callable[[str], None]
PluginCommand = Callable[[str], tuple[list[str], dict[str, str]]]


def enter_network(count: int) -> int:
    """Bring the sandbox namespace's loopback up with every node's address; returns the namespace's inode."""
    _ip("link", "set", "lo", "up")
    for index in range(count):
        _ip("addr", "add", f"{host.node_ip(index)}/32", "dev", "lo")
    return int(Path("/proc/self/ns/net").stat().st_ino)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SandboxError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class RealNodes:
    def __init__(
        self,
        layout: Layout,
        kube: Kube,
        binaries: NodeBinaries,
        images: Sequence[ImageArchive],
        progress: Progress,
    ) -> None:
        self.layout = layout
        self.kube = kube
        self.binaries = binaries
        self.images = images
        self.group = cgroups.sandbox_group(layout.root)
        self._progress = progress
        self.agents: list[ChildProcess] = []

    def start(
        self,
        nodes: Sequence[str],
        profile: str,
        pki: Pki,
        server: str,
        gates: Sequence[str],
        plugin: PluginCommand | None,
    ) -> list[ChildProcess]:
        runc = host.runc()
        if runc is None:
            raise SandboxError("runc is not installed: apt-get install runc")
        for index, name in enumerate(nodes):
            node_dir = self.layout.node(name)
            node_dir.mkdir(parents=True, exist_ok=True)
            identity = node_identity(name)
            issue_client_cert(pki, identity)
            kubeconfig = write_kubeconfig(node_dir / "kubelet.kubeconfig", server, pki, identity)
            minors: list[int] = []
            if profile:
                machine_file = self.layout.machine_file(name)
                sim = (
                    SimulatedMachine(machine_file)
                    if machine_file.exists()
                    else SimulatedMachine.create(machine_file, profile, name)
                )
                minors = [int(g["minor"]) for g in sim.state()["gpus"]]
            argv, env = plugin(name) if plugin is not None and profile else ([], {})
            spec = AgentSpec(
                name=name,
                index=index,
                node_dir=str(node_dir),
                log_dir=str(self.layout.logs),
                group=self.group,
                gpu_minors=minors,
                kubelet=str(self.binaries.kubelet),
                containerd=str(self.binaries.containerd),
                ctr=str(self.binaries.ctr),
                shim_dir=str(self.binaries.containerd_shim_runc_v2.parent),
                runc=str(runc),
                kubeconfig=str(kubeconfig),
                ca_file=str(pki.ca_cert),
                pause_image=PAUSE_IMAGE,
                images=[str(i.path) for i in self.images],
                feature_gates=list(gates),
                plugin_argv=argv,
                plugin_env=env,
            )
            spec.write(node_dir / "agent.json")
            argv_agent = (
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                sys.executable,
                "-m",
                "sandbox.realnode.node",
                str(node_dir / "agent.json"),
            )
            self.agents.append(spawn(ProcessSpec(f"node-{name}", argv_agent, self.layout.log(f"node-{name}"))))
        self._wait_ready(nodes, with_slices=bool(profile and plugin))
        return self.agents

    def _wait_ready(self, nodes: Sequence[str], with_slices: bool) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = set(nodes)
        while waiting:
            for agent in self.agents:
                if not agent.alive():
                    raise SandboxError(f"{agent.name} exited with {agent.exit_code()}: {agent.log_tail(8)}")
            for name in sorted(waiting):
                if self._node_ready(name) and (not with_slices or self._has_slices(name)):
                    waiting.discard(name)
                    self._progress(
                        f"real node {name} is Ready" + (" and its plugin published slices" if with_slices else "")
                    )
            if waiting and time.monotonic() > deadline:
                raise SandboxError(
                    f"real node(s) {', '.join(sorted(waiting))} not ready in {READY_TIMEOUT_S:.0f} s; see "
                    f"{self.layout.logs}/kubelet-*.log, containerd-*.log, node-*.log"
                )
            if waiting:
                time.sleep(0.5)

    def _node_ready(self, name: str) -> bool:
        nodes = self.kube.list("/api/v1/nodes", fieldSelector=f"metadata.name={name}")
        for node in nodes:
            for cond in node.get("status", {}).get("conditions", []):
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    return True
        return False

    def _has_slices(self, name: str) -> bool:
        return bool(self.kube.list("/apis/resource.k8s.io/v1/resourceslices", fieldSelector=f"spec.nodeName={name}"))

    def delete_pods(self, keep_namespace: str = "") -> int:
        """Delete every pod (except those in ``keep_namespace``) and wait (bounded) until the kubelets have let
        them go; returns how many were left."""

        def listed() -> list[dict[str, Any]]:
            return [p for p in self.kube.list("/api/v1/pods") if p["metadata"]["namespace"] != keep_namespace]

        pods = listed()
        for pod in pods:
            meta = pod["metadata"]
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            try:
                self.kube.delete(path, gracePeriodSeconds="1")
            except Exception as exc:  # the API server is going: nothing more to do
                self._progress(f"could not delete pod {meta['namespace']}/{meta['name']}: {exc}")
        deadline = time.monotonic() + POD_DELETE_TIMEOUT_S
        while pods and time.monotonic() < deadline:
            time.sleep(0.5)
            pods = listed()
        return len(pods)

    def stop(self, stop_agent: Callable[[ChildProcess], None]) -> None:
        for agent in reversed(self.agents):
            stop_agent(agent)
        killed = cgroups.kill_all(self.group)
        left = cgroups.remove(self.group)
        if killed or left:
            self._progress(f"cgroups: {killed} leftover process(es) killed; not removable: {left}")
