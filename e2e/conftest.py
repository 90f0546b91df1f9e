"""End-to-end fixtures: one sandbox control plane per session; tests add their own simulated nodes.

``sim_node(name)`` registers a Node in the running sandbox and runs a simulated kubelet for it in this
process, with its own ``plugins_registry`` and ``plugins`` directories; the node is deleted afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from api import gpumodes
from api.partitioning import GpuMode, Whole
from dra_driver.classes import device_classes
from dra_driver.inventory import Inventory
from dra_driver.k8s import ApiError, Kube, resource_path
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from e2e.fixtures import Sandbox, sandbox, sandbox_nodes, sandbox_profile  # noqa: F401
from e2e.plugin_node import PluginNode
from e2e.wait import until
from nvml_sim.control import SimulatedMachine
from sandbox.classes import install_crds
from sandbox.kubelet.kubelet import SimulatedKubelet
from sandbox.nodes import register_node

RESOURCE = "/apis/resource.k8s.io/v1"
WHOLE = Whole()


@pytest.fixture(scope="session")
def kube(sandbox: Sandbox) -> Iterator[Kube]:  # noqa: F811
    api = sandbox.api_client()
    yield Kube(api)
    api.close()


@dataclass
class SimNode:
    name: str
    root: Path
    kubelet: SimulatedKubelet


@pytest.fixture
def sim_node(sandbox: Sandbox, kube: Kube) -> Iterator[Callable[..., SimNode]]:  # noqa: F811
    stack = contextlib.ExitStack()

    def make(prefix: str = "e2e", slice_grace_s: float = 30.0, labels: dict[str, str] | None = None) -> SimNode:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        api = sandbox.api_client()
        stack.callback(api.close)
        node = register_node(api, name, labels=labels)
        stack.callback(lambda: kube.delete(f"/api/v1/nodes/{name}"))
        stack.callback(node.stop)
        root = Path(tempfile.mkdtemp(prefix="dra-e2e-", dir="/tmp"))  # unix socket paths must stay < 108 bytes
        stack.callback(shutil.rmtree, root, True)
        kubelet = SimulatedKubelet(kube, name, root, slice_grace_s=slice_grace_s)
        kubelet.start()
        stack.callback(kubelet.stop)
        return SimNode(name, root, kubelet)

    with stack:
        yield make


@pytest.fixture
def gpu_node(sandbox: Sandbox, kube: Kube, sim_node: Callable[..., SimNode]) -> Iterator[Callable[..., PluginNode]]:  # noqa: F811
    """``gpu_node(profile, mode, labels=, mig_enabled=)``: a simulated node running the real plugin process on a
    simulated machine of ``profile`` (``mig_enabled`` overrides the profile's MIG mode). Afterwards each plugin
    stops, and its node's NodeGpuModes object (where the CRD is installed) and ResourceSlices are deleted."""
    started: list[PluginNode] = []

    def make(
        profile: str, mode: GpuMode = WHOLE, labels: dict[str, str] | None = None, mig_enabled: bool | None = None
    ) -> PluginNode:
        node = sim_node("gpu", labels=labels)
        plugin = PluginNode.create(node.name, sandbox.kubeconfig, profile, mode, root=node.root)
        if mig_enabled is not None:
            machine = plugin.root / "machine.json"
            plugin.machine = SimulatedMachine.create(machine, profile, node.name, mig_enabled=mig_enabled)
        plugin.start(kube)
        started.append(plugin)
        return plugin

    yield make
    crd_installed = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{gpumodes.CRD_NAME}")
    for p in started:
        if crd_installed is not None:
            kube.delete(resource_path(gpumodes.API_VERSION, gpumodes.PLURAL, p.name))
        p.stop()
        for s in kube.list(f"{RESOURCE}/resourceslices", fieldSelector=f"spec.nodeName={p.name}"):
            kube.delete(f"{RESOURCE}/resourceslices/{s['metadata']['name']}")


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    kube.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def inventory(tmp_path: Path) -> Callable[[str], Inventory]:
    """``inventory("dgx-a100")``: discover a fresh simulated machine through the real NVML code path."""

    def make(profile: str) -> Inventory:
        SimulatedMachine.create(tmp_path / f"{profile}.json", profile).activate()
        with Nvml() as nvml:
            return discover(nvml)

    return make


@pytest.fixture(scope="session")
def device_classes_installed(kube: Kube) -> None:
    """The shipped DeviceClasses, created once per session."""
    for c in device_classes():
        if kube.get(f"/apis/resource.k8s.io/v1/deviceclasses/{c['metadata']['name']}") is None:
            kube.create("/apis/resource.k8s.io/v1/deviceclasses", c)


@pytest.fixture(scope="session")
def gpumodes_crd(kube: Kube) -> None:
    """The NodeGpuModes CRD installed as ``sandbox up`` does, and served; the plugins' watches then find it."""
    install_crds(kube)
    until(lambda: gpumodes_listable(kube), "NodeGpuModes listable")


def gpumodes_listable(kube: Kube) -> bool:
    """Whether NodeGpuModes objects can be listed (the CRD is installed and served)."""
    try:
        kube.list(resource_path(gpumodes.API_VERSION, gpumodes.PLURAL))
    except ApiError:
        return False
    return True
