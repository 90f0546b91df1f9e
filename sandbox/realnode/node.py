"""The agent of one real node: its private file system, containerd, the images, the driver's plugin and the kubelet.

Started by the supervisor as ``unshare --mount --propagation private -- python -m sandbox.realnode.node
<node dir>/agent.json`` (the supervisor writes :class:`AgentSpec` there). It restarts the plugin when it
exits, as a DaemonSet would, and stops everything on SIGTERM: kubelet, plugin, every process of the node's
pods (by cgroup), containerd and its shims (every other process of the node's mount namespace), then the
node's cgroups. What is mounted disappears with the mount namespace when its last process ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

import yaml

from sandbox.processes import ChildProcess, ProcessSpec, spawn
from sandbox.realnode import cgroups, cleanup, mounts
from sandbox.realnode.config import CONTAINERD_SOCKET, NodeConfig, cni_conflist, containerd_toml, kubelet_config

PAUSE_ALIASES = ("registry.k8s.io/pause:3.10",)
"""Names under which the local pause image is also known (nothing can be pulled in the sandbox)."""
CONTAINERD_READY_S = 60.0
PLUGIN_RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class AgentSpec:
    name: str
    index: int
    node_dir: str
    log_dir: str
    group: str  # the sandbox's cgroup (cgroups.sandbox_group)
    gpu_minors: list[int]
    kubelet: str
    containerd: str
    ctr: str
    shim_dir: str  # where containerd-shim-runc-v2 is (containerd looks it up on PATH)
    runc: str
    kubeconfig: str  # the kubelet's: a node certificate of the sandbox CA
    ca_file: str
    pause_image: str
    images: list[str]  # OCI archives to import
    feature_gates: list[str]
    plugin_argv: list[str] = field(default_factory=list)
    plugin_env: dict[str, str] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, path: Path) -> AgentSpec:
        return cls(**json.loads(path.read_text()))


class Stop(BaseException):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    del frame
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stop(signum)


class NodeAgent:
    def __init__(self, spec: AgentSpec) -> None:
        self.spec = spec
        self.dir = Path(spec.node_dir)
        self.logs = Path(spec.log_dir)
        self.kubelet: ChildProcess | None = None
        self.plugin: ChildProcess | None = None
        self.containerd: ChildProcess | None = None

    def log(self, line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {self.spec.name}: {line}", flush=True)

    def run(self) -> int:
        try:
            self._start()
            self.log("node started")
            self._watch()
        except Stop:
            self.log("stop requested")
        except Exception as exc:  # report, then tear down what was started
            self.log(f"failed: {exc}")
            self._stop()
            return 1
        self._stop()
        return 0

    def _start(self) -> None:
        s = self.spec
        mounts.setup(self.dir, s.gpu_minors)
        cgroup_root = cgroups.create(s.group, s.name)
        cfg = NodeConfig(
            s.name, s.index, cgroup_root, s.pause_image, Path(s.runc), Path(s.ca_file), tuple(s.feature_gates)
        )
        Path("/etc/containerd").mkdir(exist_ok=True)
        Path("/etc/containerd/config.toml").write_text(containerd_toml(cfg))
        Path("/etc/cni/net.d").mkdir(parents=True, exist_ok=True)
        Path("/etc/cni/net.d/10-sandbox.conflist").write_text(cni_conflist(cfg))
        kubelet_cfg = self.dir / "kubelet-config.yaml"
        kubelet_cfg.write_text(yaml.safe_dump(kubelet_config(cfg), sort_keys=False))

        path = f"{s.shim_dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        self.containerd = spawn(
            ProcessSpec(
                f"containerd-{s.name}",
                (s.containerd, "--config", "/etc/containerd/config.toml"),
                self.logs / f"containerd-{s.name}.log",
                {"PATH": path},
            )
        )
        self._wait_containerd()
        for archive in s.images:
            self._ctr("images", "import", "--local", archive)
        for alias in PAUSE_ALIASES:  # manifests written for real clusters (deploy/examples) run unchanged
            self._ctr("images", "tag", "--force", s.pause_image, alias)
        self.log(f"containerd ready, {len(s.images)} image(s) imported")
        if s.plugin_argv:
            self.plugin = self._spawn_plugin()
        self.kubelet = spawn(
            ProcessSpec(
                f"kubelet-{s.name}",
                (
                    s.kubelet,
                    f"--config={kubelet_cfg}",
                    f"--kubeconfig={s.kubeconfig}",
                    f"--hostname-override={s.name}",
                    f"--node-ip={cfg.ip}",
                    "--v=1",
                ),
                self.logs / f"kubelet-{s.name}.log",
                {"PATH": path},
            )
        )

    def _spawn_plugin(self) -> ChildProcess:
        s = self.spec
        return spawn(
            ProcessSpec(f"plugin-{s.name}", tuple(s.plugin_argv), self.logs / f"plugin-{s.name}.log", s.plugin_env)
        )

    def _ctr(self, *args: str) -> str:
        argv = [self.spec.ctr, "--address", CONTAINERD_SOCKET, "--namespace", "k8s.io", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        return done.stdout

    def _wait_containerd(self) -> None:
        assert self.containerd is not None
        deadline = time.monotonic() + CONTAINERD_READY_S
        while True:
            if not self.containerd.alive():
                raise RuntimeError(
                    f"containerd exited with {self.containerd.exit_code()}; see {self.containerd.log_file}"
                )
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._ctr("version")
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"containerd did not answer in {CONTAINERD_READY_S:.0f} s; see {self.containerd.log_file}"
                )
            time.sleep(0.2)

    def _watch(self) -> None:
        while True:
            time.sleep(0.5)
            for child in (self.containerd, self.kubelet):
                if child is not None and not child.alive():
                    raise RuntimeError(f"{child.name} exited with {child.exit_code()}; see {child.log_file}")
            if self.plugin is not None and not self.plugin.alive():
                self.log(f"plugin exited with {self.plugin.exit_code()}; restarting it")
                time.sleep(PLUGIN_RESTART_DELAY_S)
                self.plugin = self._spawn_plugin()

    def _stop(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in (self.kubelet, self.plugin):
            if child is not None:
                child.stop(STOP_TIMEOUT_S)
        pods = f"{self.spec.group}/{self.spec.name}"
        killed = cgroups.kill_all(pods)
        if self.containerd is not None:
            self.containerd.stop(STOP_TIMEOUT_S)
        others = cleanup.kill_namespace_peers("mnt")
        left = cgroups.remove(pods)
        self.log(
            f"stopped: {killed} pod process(es) and {others} other process(es) killed"
            + (f"; cgroups left: {', '.join(map(str, left))}" if left else "")
        )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sandbox.realnode.node <agent.json>", file=sys.stderr)
        return 2
    if cleanup.namespace_inode(os.getpid(), "mnt") == cleanup.namespace_inode(os.getppid(), "mnt"):
        print("the node agent must run in a mount namespace of its own (unshare --mount)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return NodeAgent(AgentSpec.read(Path(args[0]))).run()


if __name__ == "__main__":
    sys.exit(main())
