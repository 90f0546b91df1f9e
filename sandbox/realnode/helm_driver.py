"""The driver installed on real nodes as users install it: the project's chart and image, simulated GPUs.

Instead of the node agent starting the plugin as a host process, the chart's DaemonSet runs it in the node's
containerd (``simulatedGpus``: the simulated-GPU image's ``python -m nvml_sim.entrypoint``), where it registers
with the real kubelet and publishes the node's slices::

    archive = plugin_image.build(simulated=True).archive      # sandbox/plugin_image.py
    import_image(ctr, agent_pid, archive.path)                  # into each node's containerd
    install(helm, kubeconfig, chart_values(...))                # helm install --wait
    wait_ready(kube, namespace, nodes, driver)                  # a Ready plugin pod and slices on every node

The real nodes have no kube-proxy, so the plugin pods (host network, in the sandbox's network namespace) reach the
API server at its own address (``extraEnv``: ``KUBERNETES_SERVICE_HOST``/``PORT``), not through the ``kubernetes``
Service. Images are never pulled (``pullPolicy: Never``).

``dra-gpu sandbox up --kubelet real --driver helm`` is not wired to this yet (docs/deploy.md).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from api.names import API_VERSION, DEFAULT_DRIVER_NAME
from api.partitioning import KIND, parse_mode
from dra_driver.k8s import Kube
from sandbox.errors import SandboxError
from sandbox.plugin_image import DEFAULT_TAG, REPOSITORY
from sandbox.realnode.config import CONTAINERD_SOCKET

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "dra-driver-gpu"
RELEASE = "gpu"
NAMESPACE = "dra-gpu"
READY_TIMEOUT_S = 180.0
COMPONENT = "app.kubernetes.io/component=kubelet-plugin"


def chart_values(
    profile: str,
    mode: str,
    server: str,
    *,
    driver: str = DEFAULT_DRIVER_NAME,
    state_dir: str = "/var/lib/dra-gpu",
    tag: str = DEFAULT_TAG,
) -> dict[str, Any]:
    """The chart's values for the sandbox: simulated ``profile`` GPUs in ``mode``, the API server at ``server``."""
    parse_mode(mode, "--mode")
    address = urlsplit(server)
    if address.scheme != "https" or not address.hostname or not address.port:
        raise SandboxError(f"API server {server!r} is not https://HOST:PORT")
    return {
        "driverName": driver,
        "image": {"repository": REPOSITORY, "tag": tag, "pullPolicy": "Never"},
        "simulatedGpus": {"enabled": True, "profile": profile},
        "partitioning": {"apiVersion": API_VERSION, "kind": KIND, "defaultMode": mode},
        "stateDir": state_dir,
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": address.hostname},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(address.port)},
        ],
    }


def import_image(ctr: Path, agent_pid: int, archive: Path) -> None:
    """``ctr images import`` of ``archive`` into the containerd of the node whose agent is ``agent_pid``."""
    argv = ["nsenter", "--target", str(agent_pid), "--mount", "--net", "--", str(ctr)]
    argv += ["--address", CONTAINERD_SOCKET, "--namespace", "k8s.io", "images", "import", "--local", str(archive)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SandboxError(f"importing {archive.name} into the node of agent {agent_pid}: {done.stderr.strip()}")


def _helm(helm: Path, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    argv = [str(helm), "--kubeconfig", str(kubeconfig), *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SandboxError(f"helm {' '.join(args[:2])} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def install(
    helm: Path, kubeconfig: Path, values: dict[str, Any], release: str = RELEASE, namespace: str = NAMESPACE
) -> str:
    """``helm upgrade --install`` of the chart with ``values`` (waits for the DaemonSet); returns helm's output."""
    args = ["upgrade", "--install", release, str(CHART), "--namespace", namespace, "--create-namespace"]
    return _helm(helm, kubeconfig, *args, "--wait", "--timeout", "180s", "--values", "-", stdin=yaml.safe_dump(values))


def uninstall(
    helm: Path, kubeconfig: Path, release: str = RELEASE, namespace: str = NAMESPACE, *, ignore_missing: bool = False
) -> str:
    """``helm uninstall --wait``; with ``ignore_missing`` a release that is not there is no error."""
    args = ["uninstall", release, "--namespace", namespace, "--wait", "--timeout", "120s"]
    return _helm(helm, kubeconfig, *args, *(["--ignore-not-found"] if ignore_missing else []))


def plugin_pods(kube: Kube, namespace: str = NAMESPACE, release: str = RELEASE) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={release},{COMPONENT}"
    return kube.list(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def wait_ready(
    kube: Kube, nodes: Sequence[str], driver: str = DEFAULT_DRIVER_NAME, namespace: str = NAMESPACE
) -> dict[str, str]:
    """Wait until every node has a Ready plugin pod and slices of ``driver``; returns node -> pod name."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        ready = {
            p["spec"].get("nodeName", ""): p["metadata"]["name"] for p in plugin_pods(kube, namespace) if _ready(p)
        }
        published = {
            node
            for node in nodes
            if kube.list(
                "/apis/resource.k8s.io/v1/resourceslices", fieldSelector=f"spec.nodeName={node},spec.driver={driver}"
            )
        }
        missing = sorted(n for n in nodes if n not in ready or n not in published)
        if not missing:
            return {n: ready[n] for n in nodes}
        if time.monotonic() > deadline:
            raise SandboxError(
                f"the chart's plugin is not Ready with slices of {driver} on {', '.join(missing)} after "
                f"{READY_TIMEOUT_S:.0f} s: kubectl -n {namespace} describe pods -l {COMPONENT}"
            )
        time.sleep(1.0)
