"""Per-node agents of the sandbox: a simulated kubelet for every node and, when the sandbox has a GPU
profile, the driver's kubelet plugin on a simulated GPU machine of that profile.

Each node gets ``<workdir>/nodes/<node>/`` with ``plugins_registry/``, ``plugins/``, ``cdi/``, ``state/`` and
``machine.json`` (the simulated NVML state; ``dra-gpu sim ... <that file>`` operates on it). The plugin
finds the simulated ``libnvidia-ml.so.1`` through ``LD_LIBRARY_PATH``, like a real one. If
``<workdir>/partitioning.yaml`` exists, every plugin uses it (``dra-gpu sandbox up --mode`` writes it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from kubernetes.client import ApiClient

from api.names import DEFAULT_DRIVER_NAME
from dra_driver.k8s import Kube
from nvml_sim.control import SimulatedMachine
from sandbox.errors import SandboxError
from sandbox.layout import Layout
from sandbox.processes import ChildProcess, ProcessSpec, spawn

DRIVER = DEFAULT_DRIVER_NAME
PLUGIN_READY_TIMEOUT_S = 90.0


def node_root(layout: Layout, node: str) -> Path:
    return layout.root / "nodes" / node


def partitioning_file(layout: Layout) -> Path:
    return layout.root / "partitioning.yaml"


def _kubelet(layout: Layout, node: str, kubeconfig: Path) -> ProcessSpec:
    argv = (
        sys.executable,
        "-m",
        "sandbox.kubelet",
        "--node",
        node,
        "--root",
        str(node_root(layout, node)),
        "--kubeconfig",
        str(kubeconfig),
    )
    return ProcessSpec(f"kubelet-{node}", argv, layout.log(f"kubelet-{node}"))


def _plugin(layout: Layout, node: str, profile: str, kubeconfig: Path) -> ProcessSpec:
    root = node_root(layout, node)
    machine_file = root / "machine.json"
    sim = (
        SimulatedMachine(machine_file)
        if machine_file.exists()
        else SimulatedMachine.create(machine_file, profile, node)
    )
    argv = [
        sys.executable,
        "-m",
        "kubelet_plugin",
        "--node-name",
        node,
        "--driver-name",
        DRIVER,
        "--state-dir",
        str(root / "state"),
        "--cdi-dir",
        str(root / "cdi"),
        "--plugins-dir",
        str(root / "plugins"),
        "--registry-dir",
        str(root / "plugins_registry"),
        "--kubeconfig",
        str(kubeconfig),
        "--rescan-seconds",
        "10",
    ]
    if partitioning_file(layout).exists():
        argv += ["--partitioning-config", str(partitioning_file(layout))]
    return ProcessSpec(f"plugin-{node}", tuple(argv), layout.log(f"plugin-{node}"), sim.environ())


def start(layout: Layout, nodes: tuple[str, ...], profile: str, kubeconfig: Path, api: ApiClient) -> list[ChildProcess]:
    """Start the agents and wait until every plugin has published its node's slices."""
    children = [spawn(_kubelet(layout, node, kubeconfig)) for node in nodes]
    if not profile:
        return children
    plugins = [spawn(_plugin(layout, node, profile, kubeconfig)) for node in nodes]
    children += plugins
    kube = Kube(api)
    deadline = time.monotonic() + PLUGIN_READY_TIMEOUT_S
    waiting = set(nodes)
    while waiting:
        for node in sorted(waiting):
            selector = f"spec.nodeName={node},spec.driver={DRIVER}"
            if kube.list("/apis/resource.k8s.io/v1/resourceslices", fieldSelector=selector):
                waiting.discard(node)
        for child in plugins:
            if child.popen.poll() is not None:
                raise SandboxError(f"{child.spec.name} exited with {child.popen.returncode}; see {child.spec.log_file}")
        if waiting and time.monotonic() > deadline:
            raise SandboxError(
                f"plugins of {sorted(waiting)} published no ResourceSlice in {PLUGIN_READY_TIMEOUT_S:.0f}s;"
                f" see {layout.logs}/plugin-*.log"
            )
        if waiting:
            time.sleep(0.3)
    return children
