"""The driver on kind, installed as users install it: the cluster from the project's kind config
(deploy/kind/cluster.yaml: DRA feature gates, CDI in containerd), the simulated-GPU image built by the project
command (``python -m sandbox.plugin_image --simulated``) and ``kind load image-archive``, the chart with
simulated GPUs (dgx-a100, mig), then the same scenarios as the real-node sandbox (e2e/helm_scenarios.py): the
DaemonSet's pod Ready on the worker, a busybox pod with a 1g.5gb claim running, ``helm upgrade`` to a re-tagged
image rolling the plugin without disturbing it, a new claim prepared by the new plugin pod, and ``helm
uninstall`` leaving no slices, DeviceClasses or sockets.

It needs kind and a running container engine (docker or podman); elsewhere it is skipped with the reason.
**It has never run where this project is developed and tested**: no container engine runs there, so it has
always been skipped; treat it as untried until it has passed on a machine with one. ``KIND_CLUSTER=<name>`` uses
an existing cluster (made from deploy/kind/cluster.yaml) instead of creating ``dra-gpu-e2e`` and deleting it
afterwards; ``KIND_NODE_IMAGE`` picks the node image (Kubernetes 1.34 or newer).

What kind lacks, the test supplies: kind nodes have no NVIDIA device nodes, and the plugin's CDI specs name
them, so it creates them in the worker's ``/dev`` (``mknod``, the majors and minors the real-node sandbox uses,
sandbox/realnode/devices.py) before installing the chart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import config as kube_config
from kubernetes.client import ApiClient

from api.names import DEFAULT_DRIVER_NAME
from dra_driver.k8s import Kube
from e2e import helm_scenarios as scenarios
from nvml_sim.control import SimulatedMachine
from sandbox.binaries import find_or_build_helm
from sandbox.images import ensure_images
from sandbox.plugin_image import DEFAULT_TAG, build, image_ref
from sandbox.realnode import devices, helm_driver

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "kind" / "cluster.yaml"
PROFILE, MODE = "dgx-a100", "mig"
DRIVER = DEFAULT_DRIVER_NAME
UPGRADE_TAG = "upgrade"


def _engine() -> str | None:
    for engine in ("docker", "podman"):
        if shutil.which(engine) and subprocess.run([engine, "info"], capture_output=True).returncode == 0:
            return engine
    return None


def _why_not() -> str | None:
    if _engine() is None:
        return "no running container engine (docker info / podman info failed): kind cannot run a cluster here"
    if shutil.which("kind") is None:
        return "kind is not installed (https://kind.sigs.k8s.io)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")]


@dataclass(frozen=True)
class Kind:
    name: str
    kubeconfig: Path
    engine: str
    workers: tuple[str, ...]

    def exec(self, node: str, *argv: str) -> str:
        done = subprocess.run([self.engine, "exec", node, *argv], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{node}: {' '.join(argv)}: {done.stderr}"
        return done.stdout

    def api_client(self) -> ApiClient:
        api: ApiClient = kube_config.new_client_from_config(config_file=str(self.kubeconfig))
        return api


def _kind(*args: str) -> str:
    done = subprocess.run(["kind", *args], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"kind {' '.join(args)}: {done.stderr}"
    return done.stdout


def _gpu_minors() -> list[int]:
    with tempfile.TemporaryDirectory() as tmp:
        machine = SimulatedMachine.create(Path(tmp) / "machine.json", PROFILE, "minors")
        return [int(g["minor"]) for g in machine.state()["gpus"]]


def _create_device_nodes(cluster: Kind, node: str) -> None:
    """The driver's device nodes in the kind node's /dev, as the real-node sandbox has them (devices.py)."""
    nodes = devices.device_nodes(_gpu_minors(), cluster.exec(node, "cat", "/proc/devices"))
    script = ["mkdir -p /dev/nvidia-caps"]
    script += [f"[ -e /dev/{p} ] || mknod -m {mode:o} /dev/{p} c {major} {minor}" for p, major, minor, mode in nodes]
    cluster.exec(node, "sh", "-c", "\n".join(script))


@pytest.fixture(scope="module")
def kind_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kind]:
    engine = _engine()
    assert engine is not None
    existing = os.environ.get("KIND_CLUSTER")
    name = existing or "dra-gpu-e2e"
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    if not existing:
        image = os.environ.get("KIND_NODE_IMAGE")
        _kind("create", "cluster", "--name", name, "--config", str(CONFIG), "--kubeconfig", str(kubeconfig),
              "--wait", "180s", *(["--image", image] if image else []))  # fmt: skip
    try:
        kubeconfig.write_text(_kind("get", "kubeconfig", "--name", name))
        nodes = _kind("get", "nodes", "--name", name).split()  # the node containers, named as the Nodes
        workers = tuple(sorted(n for n in nodes if not n.endswith("-control-plane")))
        assert workers, f"kind cluster {name} has no worker node (deploy/kind/cluster.yaml has one)"
        yield Kind(name, kubeconfig, engine, workers)
    finally:
        if not existing:
            _kind("delete", "cluster", "--name", name)


@pytest.fixture(scope="module")
def installed(kind_cluster: Kind) -> Iterator[Path]:
    """The chart installed on the kind cluster with simulated GPUs; yields helm."""
    progress = lambda _line: None  # noqa: E731
    archives = [build(simulated=True, progress=progress).archive.path, *(i.path for i in ensure_images(progress))]
    for archive in archives:
        _kind("load", "image-archive", str(archive), "--name", kind_cluster.name)
    for worker in kind_cluster.workers:
        _create_device_nodes(kind_cluster, worker)
    helm = find_or_build_helm(progress)
    helm_driver.install(helm, kind_cluster.kubeconfig, helm_driver.chart_values(PROFILE, MODE, None))
    try:
        with kind_cluster.api_client() as api:
            helm_driver.wait_ready(Kube(api), kind_cluster.workers, DRIVER)
        yield helm
    finally:
        helm_driver.uninstall(helm, kind_cluster.kubeconfig, ignore_missing=True)


@pytest.fixture(scope="module")
def kube(kind_cluster: Kind) -> Iterator[Kube]:
    with kind_cluster.api_client() as api:
        yield Kube(api)


@pytest.fixture(scope="module")
def first_pod(kind_cluster: Kind, kube: Kube, installed: Path) -> scenarios.GpuPod:
    with kind_cluster.api_client() as api:
        return scenarios.run_claim_pod(kube, api, kind_cluster.workers[0], DRIVER)


def test_the_daemonset_pod_is_ready_and_a_1g_5gb_claim_runs_on_busybox(
    kind_cluster: Kind, kube: Kube, first_pod: scenarios.GpuPod
) -> None:
    plugin = scenarios.check_plugin_pod(kube, kind_cluster.workers[0], image_ref(DEFAULT_TAG, simulated=True))
    scenarios.check_mig_1g_5gb(first_pod)
    with kind_cluster.api_client() as api:
        assert scenarios.prepared_by(api, plugin, first_pod)


def test_helm_upgrade_rolls_the_plugin_without_disturbing_running_gpu_pods(
    kind_cluster: Kind, kube: Kube, installed: Path, first_pod: scenarios.GpuPod
) -> None:
    node = kind_cluster.workers[0]
    old = {w: scenarios.check_plugin_pod(kube, w, image_ref(DEFAULT_TAG, simulated=True)) for w in kind_cluster.workers}
    image = image_ref(UPGRADE_TAG, simulated=True)
    for worker in kind_cluster.workers:  # the same contents under another name
        source = image_ref(DEFAULT_TAG, simulated=True)
        kind_cluster.exec(worker, "ctr", "-n", "k8s.io", "images", "tag", "--force", source, image)
    helm_driver.install(
        installed, kind_cluster.kubeconfig, helm_driver.chart_values(PROFILE, MODE, None, tag=UPGRADE_TAG)
    )
    new = scenarios.wait_rolled(kube, kind_cluster.workers, old, image)
    scenarios.check_undisturbed(kube, first_pod)
    with kind_cluster.api_client() as api:
        second = scenarios.run_claim_pod(kube, api, node, DRIVER)
        scenarios.check_mig_1g_5gb(second)
        assert scenarios.prepared_by(api, new[node], second)
    scenarios.check_undisturbed(kube, first_pod)
    scenarios.delete_pod(kube, second)


def test_helm_uninstall_leaves_no_slices_sockets_or_device_classes(
    kind_cluster: Kind, kube: Kube, installed: Path, first_pod: scenarios.GpuPod
) -> None:
    scenarios.delete_pod(kube, first_pod)
    helm_driver.uninstall(installed, kind_cluster.kubeconfig)

    def sockets(node: str) -> list[str]:
        script = f"ls -d /var/lib/kubelet/plugins_registry/{DRIVER}-* /var/lib/kubelet/plugins/{DRIVER}/* 2>/dev/null"
        return kind_cluster.exec(node, "sh", "-c", script + "; true").split()

    scenarios.check_nothing_left(kube, DRIVER, kind_cluster.workers, sockets)
