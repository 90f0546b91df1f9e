"""A node whose plugin runs the real ``HardwareOps``: the simulated NVML, and a simulated driver root whose
stand-in ``nvidia-smi`` and ``nvidia-cuda-mps-control`` record what they are told (nvml_sim/driver_standins.py).

``ToolNode.driver()`` builds a plugin on it (call again to model a restart); ``calls()`` are the recorded
invocations, ``commands()`` the same as command lines (``"nvidia-smi compute-policy -i GPU-… -l"``, stdin after
``<<<``); ``daemons()`` the MPS daemons running under the plugin's MPS directory.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dra_driver.driver_root import discover_driver_files
from dra_driver.inventory import Inventory
from dra_driver.nvml import settings
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from kubelet_plugin.cdi_specs import driver_edits
from kubelet_plugin.checkpoint import Checkpoint
from kubelet_plugin.driver import GpuDriver
from kubelet_plugin.hardware import HardwareOps
from kubelet_plugin.mps import daemon_pid
from nvml_sim.build import library_path
from nvml_sim.control import SimulatedMachine
from nvml_sim.driver_install import calls_log, install
from tests.conftest import MachineFactory
from tests.kubelet_plugin.conftest import BOOT, DRIVER, NODE, ClaimStandIn

CONFIG_API = "gpu.dra-driver.dev/v1alpha1"


def mps_config(threads: int = 50, memory: str = "10Gi", kind: str = "GpuConfig") -> list[dict[str, Any]]:
    mps = {"defaultActiveThreadPercentage": threads, "defaultPinnedDeviceMemoryLimit": memory}
    parameters = {"apiVersion": CONFIG_API, "kind": kind, "sharing": {"strategy": "MPS", "mpsConfig": mps}}
    return [{"source": "FromClaim", "requests": [], "opaque": {"driver": DRIVER, "parameters": parameters}}]


@dataclass
class ToolNode:
    root: Path
    machine: SimulatedMachine
    driver_root: Path
    nvml: Nvml
    inventory: Inventory
    api: ClaimStandIn = field(default_factory=ClaimStandIn)
    boot: str = BOOT
    drivers: list[GpuDriver] = field(default_factory=list)

    @property
    def mps_root(self) -> Path:
        return self.root / "state" / "mps"

    @property
    def cdi_dir(self) -> Path:
        return self.root / "cdi"

    def hardware(self) -> HardwareOps:
        return HardwareOps.for_driver(self.nvml, discover_driver_files(self.driver_root), self.mps_root)

    def driver(self) -> GpuDriver:
        files = discover_driver_files(self.driver_root)
        d = GpuDriver(
            DRIVER,
            NODE,
            self.api,
            Checkpoint.load(self.root / "state" / "checkpoint.json", self.boot),
            HardwareOps.for_driver(self.nvml, files, self.mps_root),
            lambda: self.inventory,
            self.cdi_dir,
            self.mps_root,
            {},
            driver_edits(files),
        )
        self.drivers.append(d)
        return d

    def remove_tool(self, name: str) -> None:
        (self.driver_root / "usr" / "bin" / name).unlink()

    def calls(self) -> list[dict[str, Any]]:
        log = calls_log(self.driver_root)
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def commands(self) -> list[str]:
        out = []
        for c in self.calls():
            line = " ".join([c["program"], *c["argv"]])
            out.append(line + "".join(f" <<< {s}" for s in c.get("stdin", [])))
        return out

    def forget_calls(self) -> None:
        calls_log(self.driver_root).unlink(missing_ok=True)

    def daemons(self) -> dict[str, int]:
        """Pipe directory name -> PID of every MPS daemon running under the plugin's MPS directory."""
        if not self.mps_root.exists():
            return {}
        return {p.name: pid for p in sorted(self.mps_root.iterdir()) if (pid := daemon_pid(p)) is not None}

    def compute_mode(self, gpu_index: int) -> int:
        return settings.compute_mode(self.nvml, gpu_index)

    def records(self) -> dict[str, str]:
        ckpt = Checkpoint.load(self.root / "state" / "checkpoint.json", self.boot)
        return {uid: r.state for uid, r in ckpt.claims().items()}


@pytest.fixture
def tool_nodes(machine: MachineFactory, tmp_path: Path) -> Iterator[Callable[..., ToolNode]]:
    """``tool_nodes(mig_enabled=False)``: a DGX A100 (without MIG mode its whole GPUs take compute modes) and its
    driver root with stand-in tools. Daemons left running are killed afterwards."""
    made: list[ToolNode] = []

    def make(mig_enabled: bool = False) -> ToolNode:
        sim = machine("dgx-a100", mig_enabled=mig_enabled, init=False)
        nvml = Nvml()
        nvml.open()
        inventory = discover(nvml)
        root = install(tmp_path / "driver-root", inventory.driver_version, library_path())
        made.append(ToolNode(tmp_path, sim, root, nvml, inventory))
        return made[-1]

    yield make
    for node in made:
        for d in node.drivers:
            d.shutdown()
        for pid in node.daemons().values():  # stand-in daemons also exit once their pipe directory is gone
            os.kill(pid, signal.SIGKILL)
        node.nvml.close()


@pytest.fixture
def tool_node(tool_nodes: Callable[..., ToolNode]) -> ToolNode:
    return tool_nodes()
