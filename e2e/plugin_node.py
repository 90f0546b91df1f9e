"""A simulated GPU node running the real kubelet plugin as a separate process (so tests can SIGKILL it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from api.names import API_VERSION
from api.partitioning import KIND, GpuMode
from dra_driver.k8s import Kube
from e2e.wait import until
from nvml_sim.build import library_path
from nvml_sim.control import SimulatedMachine
from nvml_sim.driver_install import install
from sandbox.ports import pick_free_ports

TERMINATION_GRACE_S = 30  # the kubelet's default terminationGracePeriodSeconds before it kills a pod
DRIVER = "gpu.dra-driver.dev"


@dataclass
class PluginNode:
    name: str
    root: Path
    kubeconfig: Path
    machine: SimulatedMachine
    mode: GpuMode
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        name: str,
        kubeconfig: Path,
        profile: str,
        mode: GpuMode,
        root: Path | None = None,
        mig_enabled: bool = True,
    ) -> PluginNode:
        """``mig_enabled``: the GPUs' MIG mode (on, a whole GPU is prepared as its full-size MIG instance)."""
        root = root or Path(tempfile.mkdtemp(prefix="dra-pn-", dir="/tmp"))
        machine = SimulatedMachine.create(root / "machine.json", profile, name, mig_enabled=mig_enabled)
        (root / "partitioning.yaml").write_text(
            yaml.safe_dump({"apiVersion": API_VERSION, "kind": KIND, "defaultMode": str(mode)})
        )
        return cls(name, root, kubeconfig, machine, mode)

    @property
    def cdi_dir(self) -> Path:
        return self.root / "cdi"

    @property
    def checkpoint(self) -> Path:
        return self.root / "state" / "checkpoint.json"

    @property
    def registry_dir(self) -> Path:
        return self.root / "plugins_registry"

    @property
    def plugins_dir(self) -> Path:
        return self.root / "plugins"

    def dra_socket(self) -> Path:
        assert self.process is not None
        return self.plugins_dir / DRIVER / f"dra-{self.process.pid}.sock"

    def start(
        self,
        kube: Kube,
        wait_slices: bool = True,
        extra: tuple[str, ...] = (),
        wait: bool = True,
        code: Path | None = None,
    ) -> None:
        """Start the plugin process; ``code``: another checkout to run the plugin's code from (its directory is
        the process's working directory and ``PYTHONPATH``), for comparing two versions side by side."""
        log = self.root / f"plugin-{self.starts}.log"
        self.logs.append(log)
        self.starts += 1
        named = [extra[i + 1] for i, flag in enumerate(extra[:-1]) if flag == "--health-port"]
        health_port = int(named[-1]) if named else pick_free_ports(1)[0]
        argv = [
            sys.executable,
            "-m",
            "kubelet_plugin",
            "--node-name",
            self.name,
            "--driver-name",
            DRIVER,
            "--state-dir",
            str(self.root / "state"),
            "--cdi-dir",
            str(self.cdi_dir),
            "--plugins-dir",
            str(self.plugins_dir),
            "--registry-dir",
            str(self.registry_dir),
            "--kubeconfig",
            str(self.kubeconfig),
            "--rescan-seconds",
            "5",
            "--partitioning-config",
            str(self.root / "partitioning.yaml"),
            "--driver-root",
            str(install(self.root / "driver-root", self.machine.state()["driverVersion"], library_path())),
            "--sysfs-root",
            str(self.machine.sysfs_root()),
            *(() if named else ("--health-port", str(health_port))),
            *extra,
        ]
        with open(log, "wb") as out:
            env = {**os.environ, **self.machine.environ(), **({"PYTHONPATH": str(code)} if code else {})}
            self.process = subprocess.Popen(argv, env=env, cwd=code, stdout=out, stderr=subprocess.STDOUT)
        if not wait:
            return
        if wait_slices:
            selector = f"spec.nodeName={self.name},spec.driver={DRIVER}"
            until(
                lambda: self.alive() and kube.list("/apis/resource.k8s.io/v1/resourceslices", fieldSelector=selector),
                f"plugin of {self.name} publishing slices (log {log})",
                timeout=60,
            )
        until(lambda: _ready(health_port) or not self.alive(), "the plugin ready (/readyz)", timeout=60)
        if not self.alive():
            raise AssertionError(f"plugin exited: {log.read_text()[-3000:]}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.alive():
            terminate(self.process, self.log_text)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())


def terminate(process: subprocess.Popen[bytes], log_text: Callable[[], str]) -> None:
    """SIGTERM, and wait as long as the kubelet would (the DaemonSet keeps the default grace period). A plugin that
    outlives it is a defect: SIGUSR1 puts every thread's stack into its log, then SIGKILL and an AssertionError
    with the log's tail."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=TERMINATION_GRACE_S)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        until(lambda: "most recent call first" in log_text(), "the plugin's stacks in its log", 10)
        process.kill()
        process.wait(timeout=10)
        message = f"the plugin did not exit within {TERMINATION_GRACE_S} s of SIGTERM"
        raise AssertionError(f"{message}:\n{log_text()[-8000:]}") from None


def _ready(port: int) -> bool:
    """Does the plugin's ``/readyz`` say ready (slices published, claims served: start-up repair done)?"""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
