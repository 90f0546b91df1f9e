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

``dra-gpu sandbox up --kubelet real --driver helm`` does this instead of starting the plugin as a host process:
``up`` calls :func:`prepare` on the host (helm and the image may need the network, which the supervisor's
namespace lacks), the supervisor :func:`deploy` once the nodes are Ready, and on the way down :func:`retire`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from api.names import API_VERSION, DEFAULT_DRIVER_NAME
from api.partitioning import KIND, parse_mode
from dra_driver.k8s import Kube
from sandbox.errors import SandboxError
from sandbox.plugin_image import DEFAULT_TAG, REPOSITORY, image_ref
from sandbox.realnode.config import CONTAINERD_SOCKET

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "dra-driver-gpu"
RELEASE = "gpu"
NAMESPACE = "dra-gpu"
READY_TIMEOUT_S = 180.0
COMPONENT = "app.kubernetes.io/component=kubelet-plugin"
DRIVERS = ("process", "helm")  # sandbox up --driver: the node agents' host process, or the chart's DaemonSet

Progress = Callable[[str], None]


def driver_problem(driver: str, kubelet: str | None, profile: str) -> str | None:
    """What is wrong with ``sandbox up --driver DRIVER`` and these ``--kubelet``/``--profile``, or None."""
    if driver not in DRIVERS:
        return f"--driver: {driver!r} is not one of {', '.join(DRIVERS)}"
    if driver == "helm" and kubelet == "simulated":
        return (
            "--driver helm needs --kubelet real: the chart's DaemonSet runs the plugin in the nodes' containerd, "
            "and the simulated kubelet runs no containers"
        )
    if driver == "helm" and not profile:
        return "--driver helm needs a GPU --profile: the chart runs the plugin on simulated GPUs of that profile"
    return None


@dataclass(frozen=True)
class Prepared:
    """What the supervisor needs to install the chart: the helm CLI and the simulated-GPU image's archive."""

    helm: Path
    archive: Path


def prepare(progress: Progress) -> Prepared:
    """The helm CLI (built from Go modules when missing) and the simulated-GPU image (built when its inputs
    changed, else from the cache); run on the host, where the network is."""
    from sandbox.binaries import find_or_build_helm
    from sandbox.plugin_image import build

    helm = find_or_build_helm(progress)
    built = build(simulated=True, progress=progress)
    progress(f"plugin image {built.archive.ref}: {built.archive.path} ({built.size} bytes, {built.seconds:.1f} s)")
    return Prepared(helm, built.archive.path)


def deploy(
    kube: Kube,
    kubeconfig: Path,
    prepared: Prepared,
    ctr: Path,
    agents: Mapping[str, int],
    values: dict[str, Any],
    progress: Progress,
) -> dict[str, str]:
    """Import the image into every node's containerd (``agents``: node -> its agent's pid), install the chart with
    ``values`` and wait until every node has a Ready plugin pod and slices; returns node -> plugin pod."""
    started = time.monotonic()
    for node, pid in agents.items():
        import_image(ctr, pid, prepared.archive)
        progress(f"imported {prepared.archive.name} into {node}'s containerd")
    try:
        install(prepared.helm, kubeconfig, values)
    except SandboxError as exc:
        raise SandboxError(f"{exc}; the plugin pods: {describe_pods(kube) or 'none'}") from None
    progress(f"helm: release {RELEASE} of {CHART.name} installed in namespace {NAMESPACE}")
    pods = wait_ready(kube, list(agents), str(values["driverName"]))
    progress(f"the chart's plugin is Ready with slices on {len(pods)} node(s) in {time.monotonic() - started:.0f} s")
    return pods


def retire(kube: Kube, kubeconfig: Path, helm: Path, delete_workloads: Callable[[], int], progress: Progress) -> None:
    """Before the nodes stop: delete the users' pods while the chart's plugin still runs (it unprepares their
    claims), then uninstall the release without waiting (stopping the nodes ends its pods)."""
    left = delete_workloads()
    progress(f"workload pods deleted before uninstalling the chart ({left} still there)")
    uninstall(helm, kubeconfig, ignore_missing=True, wait=False)
    progress(f"helm: release {RELEASE} uninstalled")


def chart_values(
    profile: str,
    mode: str,
    server: str | None,
    *,
    driver: str = DEFAULT_DRIVER_NAME,
    state_dir: str = "/var/lib/dra-gpu",
    tag: str = DEFAULT_TAG,
) -> dict[str, Any]:
    """The chart's values for simulated ``profile`` GPUs in ``mode``, the image loaded on the nodes (never
    pulled); with ``server`` the plugin reaches the API server at that address (clusters without kube-proxy, such
    as the real-node sandbox), else through the ``kubernetes`` Service."""
    parse_mode(mode, "--mode")
    values: dict[str, Any] = {
        "driverName": driver,
        "image": {"repository": REPOSITORY, "tag": tag, "pullPolicy": "Never"},
        "simulatedGpus": {"enabled": True, "profile": profile},
        "partitioning": {"apiVersion": API_VERSION, "kind": KIND, "defaultMode": mode},
        "stateDir": state_dir,
    }
    if server is None:
        return values
    address = urlsplit(server)
    if address.scheme != "https" or not address.hostname or not address.port:
        raise SandboxError(f"API server {server!r} is not https://HOST:PORT")
    values["extraEnv"] = [
        {"name": "KUBERNETES_SERVICE_HOST", "value": address.hostname},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(address.port)},
    ]
    return values


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
    helm: Path,
    kubeconfig: Path,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    *,
    ignore_missing: bool = False,
    wait: bool = True,
) -> str:
    """``helm uninstall`` (``--wait`` unless ``wait`` is false); with ``ignore_missing`` a release that is not
    there is no error."""
    args = ["uninstall", release, "--namespace", namespace, *(["--wait", "--timeout", "120s"] if wait else [])]
    return _helm(helm, kubeconfig, *args, *(["--ignore-not-found"] if ignore_missing else []))


def retag_image(ctr: Path, agent_pid: int, tag: str, new_tag: str) -> str:
    """Tag the simulated image ``tag`` as ``new_tag`` too in a node's containerd (the same contents under another
    name, so a ``helm upgrade`` to it rolls the DaemonSet); returns the new reference."""
    source, target = image_ref(tag, simulated=True), image_ref(new_tag, simulated=True)
    argv = ["nsenter", "--target", str(agent_pid), "--mount", "--net", "--", str(ctr)]
    argv += ["--address", CONTAINERD_SOCKET, "--namespace", "k8s.io", "images", "tag", "--force", source, target]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise SandboxError(f"tagging {source} as {target} in the node of agent {agent_pid}: {done.stderr.strip()}")
    return target


def plugin_pods(kube: Kube, namespace: str = NAMESPACE, release: str = RELEASE) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={release},{COMPONENT}"
    return kube.list(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)


def describe_pods(kube: Kube, namespace: str = NAMESPACE) -> str:
    """One line per plugin pod: node, phase, and each container's state, restarts and last exit."""
    lines = []
    for pod in plugin_pods(kube, namespace):
        status = pod.get("status", {})
        containers = []
        for c in status.get("containerStatuses") or []:
            state = next(iter(c.get("state") or {"unknown": {}}))
            detail = (c.get("state") or {}).get(state, {}).get("reason", "")
            last = (c.get("lastState") or {}).get("terminated") or {}
            ended = f", last exit {last.get('exitCode')} ({last.get('reason', '')})" if last else ""
            containers.append(f"{state}{f' {detail}' if detail else ''}, {c.get('restartCount', 0)} restarts{ended}")
        node = pod["spec"].get("nodeName", "unscheduled")
        lines.append(f"{pod['metadata']['name']} on {node}: {status.get('phase')}; {'; '.join(containers)}")
    return " | ".join(lines)


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
                f"{READY_TIMEOUT_S:.0f} s ({describe_pods(kube, namespace) or 'no plugin pods'}): "
                f"kubectl -n {namespace} describe pods -l {COMPONENT}"
            )
        time.sleep(1.0)
