"""The driver under test: a real checkpoint and CDI directory, ``FakeHardware``, an inventory discovered from a
simulated DGX A100, the files of a simulated driver installation (in every CDI spec), and a stand-in for the two
API calls the driver makes (GET the claim, PATCH its status)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dra_driver.cdi import ContainerEdits
from dra_driver.driver_root import discover_driver_files
from dra_driver.inventory import Inventory
from dra_driver.k8s import MERGE_PATCH, ApiError
from dra_driver.kubeletplugin.protocol import ClaimRef
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from kubelet_plugin.cdi_specs import driver_edits
from kubelet_plugin.checkpoint import Checkpoint
from kubelet_plugin.driver import GpuDriver
from nvml_sim.build import library_path
from nvml_sim.driver_install import install
from tests.conftest import MachineFactory
from tests.kubelet_plugin.fakes import FakeHardware

DRIVER = "gpu.dra-driver.dev"
NODE = "node-a"
BOOT = "boot-1"


class ClaimStandIn:
    """``get(path)`` answers with the claims it was given; ``patch`` and ``replace`` calls are recorded
    (``fail_patches``: errors the next patches raise). Not an API server: no validation, no resource versions."""

    def __init__(self) -> None:
        self.claims: dict[str, dict[str, Any]] = {}
        self.patches: list[tuple[str, Any, str]] = []
        self.replaces: list[tuple[str, dict[str, Any]]] = []
        self.fail_patches: list[ApiError] = []

    def add(self, claim: dict[str, Any]) -> ClaimRef:
        meta = claim["metadata"]
        self.claims[f"/apis/resource.k8s.io/v1/namespaces/{meta['namespace']}/resourceclaims/{meta['name']}"] = claim
        return ClaimRef(meta["namespace"], meta["uid"], meta["name"])

    def get(self, path: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.claims.get(path))

    def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> dict[str, Any]:
        self.patches.append((path, body, content_type))
        if self.fail_patches:
            raise self.fail_patches.pop(0)
        return {}

    def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.replaces.append((path, copy.deepcopy(body)))
        return body


def claim(
    uid: str,
    devices: list[str],
    config: list[dict[str, Any]] | None = None,
    driver: str = DRIVER,
    status_devices: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An allocated ResourceClaim as the API returns it (named after its UID)."""
    results = [{"request": "gpu", "driver": driver, "pool": NODE, "device": d} for d in devices]
    status: dict[str, Any] = {"allocation": {"devices": {"results": results, "config": config or []}}}
    if status_devices:
        status["devices"] = status_devices
    return {
        "metadata": {"uid": uid, "name": f"claim-{uid}", "namespace": "ns", "resourceVersion": "41"},
        "status": status,
    }


def time_slicing(interval: str) -> list[dict[str, Any]]:
    parameters = {
        "apiVersion": "gpu.dra-driver.dev/v1alpha1",
        "kind": "GpuConfig",
        "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": interval}},
    }
    return [{"source": "FromClaim", "requests": [], "opaque": {"driver": DRIVER, "parameters": parameters}}]


@dataclass
class Node:
    """One node's plugin state; ``driver()`` builds a plugin on it (call again to model a restart)."""

    root: Path
    inventory: Inventory
    hardware: FakeHardware = field(default_factory=FakeHardware)
    api: ClaimStandIn = field(default_factory=ClaimStandIn)
    boot: str = BOOT
    drivers: list[GpuDriver] = field(default_factory=list)
    driver_files: ContainerEdits = field(default_factory=ContainerEdits)  # cdi_specs.driver_edits

    @property
    def cdi_dir(self) -> Path:
        return self.root / "cdi"

    def driver(self) -> GpuDriver:
        d = GpuDriver(
            DRIVER,
            NODE,
            self.api,
            Checkpoint.load(self.root / "checkpoint.json", self.boot),
            self.hardware,
            lambda: self.inventory,
            self.cdi_dir,
            self.root / "mps",
            {},
            self.driver_files,
        )
        self.drivers.append(d)
        return d

    def specs(self) -> list[str]:
        return sorted(p.name for p in self.cdi_dir.glob("*.json")) if self.cdi_dir.exists() else []

    def recorded(self) -> dict[str, str]:
        """Claim UID -> state, as a restarted plugin would read the checkpoint."""
        return {uid: r.state for uid, r in Checkpoint.load(self.root / "checkpoint.json", self.boot).claims().items()}


def _node(machine: MachineFactory, tmp_path: Path, mig_enabled: bool) -> Iterator[Node]:
    machine("dgx-a100", mig_enabled=mig_enabled, init=False)
    with Nvml() as nvml:
        inventory = discover(nvml)
    root = install(tmp_path / "driver-root", inventory.driver_version, library_path())
    n = Node(tmp_path, inventory, driver_files=driver_edits(discover_driver_files(root)))
    yield n
    for d in n.drivers:
        d.shutdown()


@pytest.fixture
def node(machine: MachineFactory, tmp_path: Path) -> Iterator[Node]:
    yield from _node(machine, tmp_path, mig_enabled=True)


@pytest.fixture
def plain_node(machine: MachineFactory, tmp_path: Path) -> Iterator[Node]:
    """MIG mode off: a whole GPU is then prepared without touching the hardware."""
    yield from _node(machine, tmp_path, mig_enabled=False)


# the node whose plugin runs the real HardwareOps with the simulated driver root's tools (tooled.py)
from tests.kubelet_plugin.tooled import tool_node, tool_nodes  # noqa: E402, F401
