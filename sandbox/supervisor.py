"""The supervisor: the one process that owns a running sandbox.

It starts the control plane, registers the simulated nodes, discards node state of another profile
(``nodestate.keep_only``), writes the GPU mode, starts the per-node agents (:func:`start_node_agents`), installs
the shipped DeviceClasses when the nodes have GPUs, marks ``status.json`` ready, and then watches its children until SIGTERM or SIGINT,
when it stops everything in reverse order (agents, nodes, scheduler/controller manager, API server, etcd) and
marks the status ``stopped``. If a control-plane process dies on its own, the supervisor stops the rest and marks
the status ``failed`` with the log to read. Its children die with it even on SIGKILL (parent-death signal).

With ``--kubelet real`` it runs in the private network and mount namespace ``up`` started it in (``unshare``),
relays the host's connections on the inherited ``--api-listen-fd`` socket to the API server
(realnode/forward.py) and runs real nodes (realnode/cluster.py) instead of simulated ones. With ``--driver helm``
the node agents start no plugin: once the nodes are Ready it installs the project's chart with simulated GPUs
(realnode/helm_driver.py), whose DaemonSet runs the plugin in each node's containerd and also installs the
DeviceClasses; on the way down it deletes the users' pods while that plugin still runs, then uninstalls the chart.

Started detached by ``dra-gpu sandbox up`` (see commands.py) as::

    python -m sandbox.supervisor run --workdir DIR --profile NAME --nodes N [--mode MODE] [--detach] [--lock-fd FD]
        [--owner-pid PID] [--kubelet real --api-listen-fd FD [--driver helm --helm PATH --plugin-image PATH]]
        [--etcd PATH --kube-apiserver PATH --kube-scheduler PATH --kube-controller-manager PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import config as kube_config
from kubernetes.client import ApiClient

from dra_driver.k8s import Kube
from sandbox import agents, classes, flags, instance, mode_controller, nodestate
from sandbox.binaries import Binaries, find_or_build
from sandbox.controlplane import DEFAULT_STARTUP_TIMEOUT_S, ControlPlane
from sandbox.errors import SandboxError
from sandbox.layout import Layout
from sandbox.nodes import SimulatedNode, register_node
from sandbox.processes import ChildProcess, spawn
from sandbox.realnode import cgroups, cleanup, cluster, helm_driver
from sandbox.realnode.cluster import RealNodes
from sandbox.realnode.forward import Forwarder
from sandbox.status import ProcessInfo, State, Status, write_status

WATCH_INTERVAL_S = 1.0
AGENT_STOP_TIMEOUT_S = 10.0
REAL_NODE_STOP_TIMEOUT_S = 45.0  # kubelet, plugin, pods, containerd, cgroups: each bounded by 10 s


def node_names(count: int) -> tuple[str, ...]:
    return tuple(f"sim-node-{i}" for i in range(count))


def start_node_agents(layout: Layout, status: Status, kubeconfig: Path, api: ApiClient) -> list[ChildProcess]:
    """Per-node agents (see agents.py): a simulated kubelet per node, and the GPU plugin when a profile is set.

    Called in the supervisor's main thread after the nodes are registered and before the sandbox is reported
    ready; agents die with the supervisor and are stopped first (SIGTERM, then SIGKILL) when the sandbox stops.
    """
    return agents.start(layout, status.nodes, status.profile, kubeconfig, api)


class Terminated(BaseException):
    """SIGTERM or SIGINT arrived: unwind and stop everything."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    del frame
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Terminated(signum)


@dataclass(frozen=True)
class SupervisorConfig:
    workdir: Path
    profile: str
    nodes: int
    mode: str = "whole"
    binaries: Binaries | None = None
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S
    owner: instance.PidRecord | None = None
    """Stop when this process is gone (tests pass their own pid so a killed test run leaves nothing behind)."""
    kubelet: str = "simulated"
    api_listen_fd: int | None = None
    driver: str = "process"  # "helm": the chart's DaemonSet runs the plugin (real nodes only)
    helm: helm_driver.Prepared | None = None  # with driver "helm": the helm CLI and the image archive


class Supervisor:
    def __init__(self, cfg: SupervisorConfig) -> None:
        self.cfg = cfg
        self.layout = Layout(cfg.workdir)
        me = instance.own_record()
        self._status = Status(
            state=State.STARTING,
            workdir=str(cfg.workdir),
            profile=cfg.profile,
            node_count=cfg.nodes,
            mode=cfg.mode,
            kubelet=cfg.kubelet,
            driver=cfg.driver,
            supervisor_pid=me.pid,
            supervisor_start_ticks=me.start_ticks,
            started_at=_now(),
        )
        self._control_plane: ControlPlane | None = None
        self._nodes: list[SimulatedNode] = []
        self._agents: list[subprocess.Popen[bytes]] = []
        self._api: ApiClient | None = None
        self._real: RealNodes | None = None
        self._forwarder: Forwarder | None = None

    def run(self) -> int:
        """Run until a signal or a failure; returns the process exit code."""
        try:
            instance.write_pid_file(self.layout, instance.own_record())
            self._update(State.STARTING, message="starting")
            self._start()
            self._watch()
        except Terminated:
            self._progress("stop requested")
            self._shutdown(State.STOPPED, "stopped")
            return 0
        except Exception as exc:
            self._progress(f"failed: {exc}")
            self._shutdown(State.FAILED, str(exc))
            return 1
        return 0  # pragma: no cover - _watch only returns by raising

    def _start(self) -> None:
        binaries = self.cfg.binaries or find_or_build(self._progress)
        listener = None
        if self.cfg.kubelet == "real":
            assert self.cfg.api_listen_fd is not None, "--kubelet real needs --api-listen-fd"
            netns = cluster.enter_network(self.cfg.nodes)
            listener = socket.socket(fileno=self.cfg.api_listen_fd)
            self._update(State.STARTING, cgroup=cgroups.sandbox_group(self.layout.root), netns=netns)
        cp = ControlPlane(
            self.cfg.workdir,
            binaries,
            startup_timeout=self.cfg.startup_timeout,
            progress=self._progress,
            apiserver_port=listener.getsockname()[1] if listener else None,
        )
        self._control_plane = cp
        cp.start()
        if listener is not None:
            self._forwarder = Forwarder(listener, cp.ports.apiserver)
            self._forwarder.start()
        self._update(
            State.STARTING,
            message="registering nodes",
            kubeconfig=str(cp.kubeconfig),
            server=cp.server,
            ports=cp.ports.to_json(),
            feature_gates=cp.feature_gates,
            runtime_config=flags.RUNTIME_CONFIG,
            resource_versions=cp.served_resource_versions,
            startup_seconds=round(cp.startup_seconds, 2),
            processes=tuple(_info(c) for c in cp.processes),
        )
        api = kube_config.new_client_from_config(config_file=str(cp.kubeconfig))
        self._api = api
        names = node_names(self.cfg.nodes)
        if self.cfg.kubelet != "real":
            for name in names:
                self._nodes.append(register_node(api, name))
            self._progress(f"registered {len(self._nodes)} simulated node(s)")
        self._update(State.STARTING, message="starting node agents", nodes=names)
        for note in nodestate.keep_only(self.layout, names, self.cfg.profile):
            self._progress(note)
        agents.write_partitioning(self.layout, self.cfg.mode)
        if self.cfg.kubelet == "real":
            children = self._start_real_nodes(cp, api)
        else:
            children = start_node_agents(self.layout, self._status, cp.kubeconfig, api)
        self._agents = [c.popen for c in children]
        if self.cfg.profile and self.cfg.driver != "helm":  # helm: the chart installed them
            self._progress(f"installed {classes.install(Kube(api))} shipped DeviceClass(es)")
        if self.cfg.profile:
            children.append(spawn(mode_controller.spec(self.layout, cp.kubeconfig)))  # docs/controller.md
            self._agents.append(children[-1].popen)
        agent_infos = tuple(_popen_info(c.spec.name, c.popen, self.layout) for c in children)
        self._update(State.READY, message="ready", ready_at=_now(), processes=self._status.processes + agent_infos)
        self._progress(f"ready: export KUBECONFIG={cp.kubeconfig}")

    def _start_real_nodes(self, cp: ControlPlane, api: ApiClient) -> list[ChildProcess]:
        from sandbox.binaries import find_or_build_node
        from sandbox.images import ensure_images

        self._real = RealNodes(
            self.layout, Kube(api), find_or_build_node(self._progress), ensure_images(self._progress), self._progress
        )

        def plugin(node: str) -> tuple[list[str], dict[str, str]]:
            return agents.plugin_command(self.layout, node, self.cfg.profile, cp.kubeconfig, real_node=True)

        gates = cp.feature_gates.enabled
        names = node_names(self.cfg.nodes)
        helm = self.cfg.helm if self.cfg.driver == "helm" else None
        started = self._real.start(names, self.cfg.profile, cp.pki, cp.server, gates, None if helm else plugin)
        if helm is not None and self.cfg.profile:
            values = helm_driver.chart_values(self.cfg.profile, self.cfg.mode, cp.server)
            node_pids = {name: agent.pid for name, agent in zip(names, started, strict=True)}
            ctr = self._real.binaries.ctr
            helm_driver.deploy(Kube(api), cp.kubeconfig, helm, ctr, node_pids, values, self._progress)
        return started

    def _watch(self) -> None:
        assert self._control_plane is not None
        reported: set[int] = set()
        while True:
            time.sleep(WATCH_INTERVAL_S)
            owner = self.cfg.owner
            if owner is not None and not instance.alive(owner):
                self._progress(f"owner process {owner.pid} is gone")
                raise Terminated(0)
            for child in self._control_plane.processes:
                if not child.alive():
                    raise SandboxError(
                        f"{child.name} exited unexpectedly with code {child.exit_code()}; see {child.log_file}; "
                        "start the sandbox again"
                    )
            for agent in self._agents:
                if agent.poll() is not None and agent.pid not in reported:
                    reported.add(agent.pid)
                    self._progress(f"warning: node agent pid {agent.pid} exited with code {agent.returncode}")

    def _shutdown(self, final: State, message: str) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._update(State.STOPPING, message="stopping")
        if self._real is not None:
            helm, real, kubeconfig = self.cfg.helm, self._real, Path(self._status.kubeconfig)
            if self.cfg.driver == "helm" and helm is not None and self.cfg.profile:
                try:
                    delete_workloads = lambda: real.delete_pods(keep_namespace=helm_driver.NAMESPACE)  # noqa: E731
                    helm_driver.retire(real.kube, kubeconfig, helm.helm, delete_workloads, self._progress)
                except Exception as exc:  # the nodes stop anyway; down sweeps what is left
                    self._progress(f"could not uninstall the chart: {exc}")
            with contextlib.suppress(Exception):  # the API server may be gone already
                left = self._real.delete_pods()
                self._progress(f"pods deleted before stopping the nodes ({left} still there)")
            self._real.stop(lambda agent: _stop_popen(agent.popen, REAL_NODE_STOP_TIMEOUT_S))
        for agent in reversed(self._agents):
            _stop_popen(agent)
        if self._forwarder is not None:
            self._forwarder.stop()
        for node in self._nodes:
            node.stop()
        if self._api is not None:
            self._api.close()
        if self._control_plane is not None:
            self._control_plane.stop()
        if self._real is not None:
            killed = cleanup.kill_namespace_peers("net")
            if killed:
                self._progress(f"killed {killed} leftover process(es) of the sandbox's network namespace")
        self._update(final, message=message)
        self.layout.pid_file.unlink(missing_ok=True)
        self._progress(f"supervisor exiting ({final.value})")

    def _update(self, state: State, **changes: Any) -> None:
        self._status = dataclasses.replace(self._status, state=state, **changes)
        write_status(self.layout, self._status)

    def _progress(self, line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def _info(child: ChildProcess) -> ProcessInfo:
    return ProcessInfo(child.name, child.pid, instance.start_ticks(child.pid) or 0, str(child.log_file))


def _popen_info(name: str, popen: subprocess.Popen[bytes], layout: Layout) -> ProcessInfo:
    return ProcessInfo(name, popen.pid, instance.start_ticks(popen.pid) or 0, str(layout.logs))


def _stop_popen(popen: subprocess.Popen[bytes], timeout: float = AGENT_STOP_TIMEOUT_S) -> None:
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox.supervisor")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a sandbox in the foreground until SIGTERM")
    run.add_argument("--workdir", type=Path, required=True)
    run.add_argument("--profile", default="")
    run.add_argument("--nodes", type=int, default=1)
    run.add_argument("--mode", default="whole", help="GPU mode of every node: whole, mig, timeslice:N or shared")
    run.add_argument("--lock-fd", type=int, help="inherited descriptor already holding the sandbox lock")
    run.add_argument("--detach", action="store_true", help="fork; the parent exits at once")
    run.add_argument("--startup-timeout", type=float, default=DEFAULT_STARTUP_TIMEOUT_S)
    run.add_argument("--owner-pid", type=int, help="stop when this process exits")
    run.add_argument("--kubelet", choices=("real", "simulated"), default="simulated")
    run.add_argument("--api-listen-fd", type=int, help="real nodes: the host's listening socket for the API port")
    run.add_argument("--driver", choices=helm_driver.DRIVERS, default="process")
    run.add_argument("--helm", type=Path, help="--driver helm: the helm CLI")
    run.add_argument("--plugin-image", type=Path, help="--driver helm: the simulated-GPU image's OCI archive")
    for name in ("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager"):
        run.add_argument(f"--{name}", type=Path)
    return parser.parse_args(argv)


def _binaries(args: argparse.Namespace) -> Binaries | None:
    paths = (args.etcd, args.kube_apiserver, args.kube_scheduler, args.kube_controller_manager)
    return Binaries(*paths) if all(paths) else None


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.driver == "helm" and (args.kubelet != "real" or args.helm is None or args.plugin_image is None):
        print("--driver helm needs --kubelet real, --helm and --plugin-image", file=sys.stderr)
        return 2
    layout = Layout(args.workdir)
    lock_fd = args.lock_fd if args.lock_fd is not None else instance.try_lock(layout)
    if lock_fd is None:
        print(f"a sandbox is already running in {layout.root}", file=sys.stderr)
        return 1
    if args.detach and os.fork() > 0:
        os._exit(0)  # the parent: the caller waits for it, the child carries on re-parented
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    owner = None
    if args.owner_pid is not None:
        ticks = instance.start_ticks(args.owner_pid)
        owner = instance.PidRecord(args.owner_pid, ticks if ticks is not None else -1)
    prepared = helm_driver.Prepared(args.helm, args.plugin_image) if args.driver == "helm" else None
    cfg = SupervisorConfig(
        args.workdir,
        args.profile,
        args.nodes,
        args.mode,
        _binaries(args),
        args.startup_timeout,
        owner,
        args.kubelet,
        args.api_listen_fd,
        args.driver,
        prepared,
    )
    return Supervisor(cfg).run()


if __name__ == "__main__":
    sys.exit(main())
