"""Per-node agents of the sandbox: a simulated kubelet for every node and, when the sandbox has a GPU
profile, the driver's kubelet plugin on a simulated GPU machine of that profile.

Each node gets ``<workdir>/nodes/<node>/`` with ``plugins_registry/``, ``plugins/``, ``cdi/``, ``state/`` and
``machine.json`` (the simulated NVML state; ``dra-gpu sim ... <that file>`` operates on it). A machine file
already there is reused (``nodestate.keep_only`` has discarded any of another profile). ``driver-root/`` is a
simulated driver installation (``nvml_sim.driver_install``) of the machine's driver version: the plugin gets it as
``--driver-root`` and loads the simulated ``libnvidia-ml.so.1`` from it, like a real one. Every plugin reads its GPU mode
from ``<workdir>/partitioning.yaml`` (:func:`write_partitioning`, from ``dra-gpu sandbox up --mode``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml
from kubernetes.client import ApiClient

from api.names import API_VERSION, DEFAULT_DRIVER_NAME
from api.partitioning import KIND, parse_mode
from dra_driver.k8s import Kube
from nvml_sim.build import library_path
from nvml_sim.control import SimulatedMachine
from nvml_sim.driver_install import install
from sandbox import node_metrics
from sandbox.errors import SandboxError
from sandbox.layout import Layout
from sandbox.ports import LOOPBACK, pick_free_ports
from sandbox.processes import ChildProcess, ProcessSpec, spawn

DRIVER = DEFAULT_DRIVER_NAME
PLUGIN_READY_TIMEOUT_S = 90.0


def write_partitioning(layout: Layout, mode: str) -> None:
    """Write the PartitioningConfig that puts every GPU of every node in ``mode`` (whole, mig, timeslice:N, shared)."""
    parse_mode(mode, "--mode")
    doc = {"apiVersion": API_VERSION, "kind": KIND, "defaultMode": mode}
    layout.partitioning_file.write_text(yaml.safe_dump(doc, sort_keys=False))


def _kubelet(layout: Layout, node: str, kubeconfig: Path) -> ProcessSpec:
    argv = (
        sys.executable,
        "-m",
        "sandbox.kubelet",
        "--node",
        node,
        "--root",
        str(layout.node(node)),
        "--kubeconfig",
        str(kubeconfig),
    )
    return ProcessSpec(f"kubelet-{node}", argv, layout.log(f"kubelet-{node}"))


def plugin_command(
    layout: Layout, node: str, profile: str, kubeconfig: Path, *, real_node: bool = False
) -> tuple[list[str], dict[str, str]]:
    """The plugin's command line and environment for ``node``: its simulated GPUs and driver installation.

    On a simulated node the kubelet's directories, the checkpoint and the CDI specs are in the node's directory;
    on a real node (``real_node``) the plugin uses its defaults, the conventional paths, which the node's mount
    namespace binds to the same directories (see sandbox/realnode/mounts.py). The plugin serves Prometheus metrics on
    a free loopback port, recorded for ``dra-gpu sandbox status`` (sandbox/node_metrics.py)."""
    root = layout.node(node)
    machine_file = layout.machine_file(node)
    sim = (
        SimulatedMachine(machine_file)
        if machine_file.exists()
        else SimulatedMachine.create(machine_file, profile, node)
    )
    # a simulated driver installation of the machine's driver version: the plugin loads NVML from it and mounts
    # its files into containers; only the state file's variable is passed on (no LD_LIBRARY_PATH needed)
    driver_root = install(root / "driver-root", sim.state()["driverVersion"], library_path())
    env = {k: v for k, v in sim.environ().items() if k != "LD_LIBRARY_PATH"}
    argv = [sys.executable, "-m", "kubelet_plugin", "--node-name", node, "--driver-root", str(driver_root)]
    argv += ["--sysfs-root", str(sim.sysfs_root())]  # the machine's sysfs: its GPUs' NUMA nodes and PCIe roots
    argv += [
        "--driver-name",
        DRIVER,
        "--kubeconfig",
        str(kubeconfig),
        "--rescan-seconds",
        "10",
        "--xid-quiet-seconds",
        "10",
    ]
    if not real_node:
        argv += ["--state-dir", str(root / "state"), "--cdi-dir", str(root / "cdi")]
        argv += ["--plugins-dir", str(root / "plugins"), "--registry-dir", str(root / "plugins_registry")]
    if layout.partitioning_file.exists():
        argv += ["--partitioning-config", str(layout.partitioning_file)]
    (metrics_port,) = pick_free_ports(1)
    argv += ["--metrics-port", str(metrics_port), "--metrics-address", LOOPBACK]
    node_metrics.record(layout, node, LOOPBACK, metrics_port)
    return argv, env


def _plugin(layout: Layout, node: str, profile: str, kubeconfig: Path) -> ProcessSpec:
    argv, env = plugin_command(layout, node, profile, kubeconfig)
    return ProcessSpec(f"plugin-{node}", tuple(argv), layout.log(f"plugin-{node}"), env)


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
