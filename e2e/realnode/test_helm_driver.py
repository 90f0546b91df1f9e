"""The driver installed with the project's chart and image on a real node (sandbox/realnode/helm_driver.py).

The module's sandbox (dgx-a100, one node, mig) runs its host-process plugin for gpu.dra-driver.dev; the chart is
installed beside it under another driver name (gpu.helm.example) and state directory, with simulated GPUs, so the
two never share a pool. The chart's plugin runs in the node's containerd from the simulated-GPU image built
without Docker: its pod becomes Ready, it registers with the real kubelet and publishes slices, a busybox pod with
a 1g.5gb claim of its classes runs, and ``helm uninstall`` leaves no slices, sockets or DeviceClasses behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import CoreV1Api

from dra_driver.classes import class_name
from dra_driver.k8s import Kube
from e2e.fixtures import Sandbox
from e2e.realnode import pods
from e2e.wait import until
from sandbox.binaries import find_or_build_helm, find_or_build_node
from sandbox.plugin_image import build
from sandbox.realnode import helm_driver

DRIVER = "gpu.helm.example"
STATE_DIR = "/var/lib/dra-gpu-helm"  # not the host-process plugin's /var/lib/dra-gpu
R = "/apis/resource.k8s.io/v1"


@pytest.fixture(scope="module")
def installed(real_sandbox: Sandbox, real_kube: Kube) -> Iterator[tuple[Path, dict[str, str]]]:
    """The chart installed on the sandbox's node; (helm, node -> plugin pod)."""
    progress = lambda _line: None  # noqa: E731
    helm = find_or_build_helm(progress)
    ctr = find_or_build_node(progress).ctr
    archive = build(simulated=True, progress=progress).archive
    for node in real_sandbox.nodes:
        (agent,) = [p for p in real_sandbox.status.processes if p.name == f"node-{node}"]
        helm_driver.import_image(ctr, agent.pid, archive.path)
    values = helm_driver.chart_values("dgx-a100", "mig", real_sandbox.status.server, driver=DRIVER, state_dir=STATE_DIR)
    helm_driver.install(helm, real_sandbox.kubeconfig, values)
    try:
        yield helm, helm_driver.wait_ready(real_kube, real_sandbox.nodes, DRIVER)
    finally:
        helm_driver.uninstall(helm, real_sandbox.kubeconfig, ignore_missing=True)  # the last test uninstalls it


def test_the_daemonset_pod_is_ready_and_serves_a_1g_5gb_claim_on_busybox(
    real_sandbox: Sandbox, real_kube: Kube, installed: tuple[Path, dict[str, str]]
) -> None:
    _, plugin_pods = installed
    (node,) = real_sandbox.nodes
    pod = real_kube.get(f"/api/v1/namespaces/{helm_driver.NAMESPACE}/pods/{plugin_pods[node]}")
    assert pod is not None
    assert pod["spec"]["containers"][0]["image"] == "sandbox.local/dra-gpu-plugin:dev-simulated"
    assert pod["spec"]["containers"][0]["command"] == ["python", "-m", "nvml_sim.entrypoint"]

    ns = f"helm-{uuid.uuid4().hex[:6]}"
    real_kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
    exactly = {"deviceClassName": class_name("mig-1g-5gb", DRIVER)}
    template = {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": exactly}]}}}
    real_kube.create(f"{R}/namespaces/{ns}/resourceclaimtemplates", {"metadata": {"name": "mig"}, "spec": template})
    workload = pods.create(real_kube, ns, node, "mig")
    api = real_sandbox.api_client()
    try:
        seen = pods.seen(api, real_kube, ns, workload)
        assert len(seen.visible) == 1 and seen.visible[0].startswith("MIG-"), seen.summary()
        (claim,) = real_kube.list(f"{R}/namespaces/{ns}/resourceclaims")
        (result,) = claim["status"]["allocation"]["devices"]["results"]
        assert result["driver"] == DRIVER and "-mig-1g-5gb-" in result["device"]
        log = CoreV1Api(api).read_namespaced_pod_log(plugin_pods[node], helm_driver.NAMESPACE)
        assert f"prepared 1 device(s): {result['device']}" in log
    finally:
        real_kube.delete(f"/api/v1/namespaces/{ns}/pods/{workload}", gracePeriodSeconds="1")
        until(lambda: not real_kube.list(f"/api/v1/namespaces/{ns}/pods"), "the workload pod gone", timeout=60)
        api.close()


def test_uninstall_leaves_no_slices_sockets_or_device_classes(
    real_sandbox: Sandbox, real_kube: Kube, installed: tuple[Path, dict[str, str]]
) -> None:
    helm, _ = installed
    helm_driver.uninstall(helm, real_sandbox.kubeconfig)
    selector = f"spec.driver={DRIVER}"
    # the kubelet removes a deregistered driver's slices after its grace period (30 s)
    until(lambda: not real_kube.list(f"{R}/resourceslices", fieldSelector=selector), "slices gone", timeout=90)
    assert not [c for c in real_kube.list(f"{R}/deviceclasses") if c["metadata"]["name"].endswith(".helm.example")]
    for node in real_sandbox.nodes:
        kubelet = real_sandbox.layout.node(node) / "kubelet"
        assert not list((kubelet / "plugins_registry").glob(f"{DRIVER}-*")), "registration socket left"
        assert not list((kubelet / "plugins" / DRIVER).glob("*.sock")), "DRA socket left"
