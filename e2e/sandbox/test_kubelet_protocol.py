"""The sandbox end to end: real scheduler and controllers, simulated kubelet, a plugin over real gRPC."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dra_driver.k8s import Kube
from e2e.conftest import SimNode
from e2e.testplugin import TestPlugin
from e2e.wait import until

pytestmark = pytest.mark.sandbox
R = "/apis/resource.k8s.io/v1"


def _setup(kube: Kube, node: SimNode, driver: str, ns: str) -> None:
    kube.create(
        f"{R}/deviceclasses",
        {
            "metadata": {"name": f"{node.name}.example.com"},
            "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{driver}"'}}]},
        },
    )
    kube.create(
        f"{R}/resourceslices",
        {
            "metadata": {"name": f"{node.name}-{driver}"},
            "spec": {
                "driver": driver,
                "nodeName": node.name,
                "pool": {"name": node.name, "generation": 1, "resourceSliceCount": 1},
                "devices": [{"name": "dev-0"}, {"name": "dev-1"}],
            },
        },
    )
    kube.create(
        f"{R}/namespaces/{ns}/resourceclaimtemplates",
        {
            "metadata": {"name": "one"},
            "spec": {
                "spec": {
                    "devices": {
                        "requests": [{"name": "gpu", "exactly": {"deviceClassName": f"{node.name}.example.com"}}]
                    }
                }
            },
        },
    )


def _pod(kube: Kube, ns: str, name: str, node: SimNode) -> dict[str, Any]:
    return kube.create(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": node.name},
                "containers": [
                    {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"claims": [{"name": "gpu"}]}}
                ],
                "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one"}],
            },
        },
    )


def _claim_of(kube: Kube, ns: str, pod: str) -> dict[str, Any] | None:
    p = kube.get(f"/api/v1/namespaces/{ns}/pods/{pod}")
    statuses = (p or {}).get("status", {}).get("resourceClaimStatuses") or []
    return kube.get(f"{R}/namespaces/{ns}/resourceclaims/{statuses[0]['resourceClaimName']}") if statuses else None


def test_scheduled_pod_is_prepared_runs_and_is_unprepared_on_delete(
    kube: Kube, sim_node: Callable[..., SimNode], namespace: str
) -> None:
    node = sim_node()
    driver = f"{node.name}.example.com"
    plugin = TestPlugin(driver, node.kubelet.registry_dir, node.kubelet.plugins_dir).start()
    try:
        until(lambda: plugin.calls.registered == [True], "plugin registration")
        _setup(kube, node, driver, namespace)
        _pod(kube, namespace, "worker", node)
        pod = until(
            lambda: (
                (p := kube.get(f"/api/v1/namespaces/{namespace}/pods/worker"))
                and p["status"].get("phase") == "Running"
                and p
            ),
            "pod Running",
        )
        assert pod["spec"]["nodeName"] == node.name
        claim = _claim_of(kube, namespace, "worker")
        assert claim is not None
        (result,) = claim["status"]["allocation"]["devices"]["results"]
        assert (result["driver"], result["pool"], result["device"]) == (driver, node.name, "dev-0")
        assert [c.uid for c in plugin.calls.prepared] == [claim["metadata"]["uid"]]
        assert plugin.calls.prepared[0].name == claim["metadata"]["name"]

        kube.delete(f"/api/v1/namespaces/{namespace}/pods/worker")
        until(lambda: kube.get(f"/api/v1/namespaces/{namespace}/pods/worker") is None, "pod removed")
        assert [c.uid for c in plugin.calls.unprepared] == [claim["metadata"]["uid"]]
        until(
            lambda: kube.get(f"{R}/namespaces/{namespace}/resourceclaims/{claim['metadata']['name']}") is None,
            "generated claim deleted by the resourceclaim controller",
        )
    finally:
        plugin.stop()


def test_per_claim_prepare_error_leaves_pod_pending_with_an_event(
    kube: Kube, sim_node: Callable[..., SimNode], namespace: str
) -> None:
    node = sim_node()
    driver = f"{node.name}.example.com"
    plugin = TestPlugin(
        driver, node.kubelet.registry_dir, node.kubelet.plugins_dir, fail={"doomed": "GPU 3 is on fire: replace it"}
    ).start()
    try:
        _setup(kube, node, driver, namespace)
        _pod(kube, namespace, "doomed", node)
        event = until(
            lambda: next(
                (
                    e
                    for e in kube.list(f"/api/v1/namespaces/{namespace}/events")
                    if e["reason"] == "FailedPrepareDynamicResources"
                ),
                None,
            ),
            "warning event",
        )
        assert event["involvedObject"]["name"] == "doomed" and event["type"] == "Warning"
        assert "GPU 3 is on fire: replace it" in event["message"]
        until(lambda: len(plugin.calls.prepared) >= 2, "a retry after backoff")
        pod = kube.get(f"/api/v1/namespaces/{namespace}/pods/doomed")
        assert pod is not None and pod["status"]["phase"] == "Pending"
    finally:
        plugin.stop()


def test_plugin_offering_only_v1beta1_is_served_with_v1beta1(
    kube: Kube, sim_node: Callable[..., SimNode], namespace: str
) -> None:
    node = sim_node()
    driver = f"{node.name}.example.com"
    plugin = TestPlugin(
        driver, node.kubelet.registry_dir, node.kubelet.plugins_dir, versions=("v1beta1.DRAPlugin",)
    ).start()
    try:
        until(lambda: node.kubelet.watcher.plugin(driver), "registration")
        plugin_state = node.kubelet.watcher.plugin(driver)
        assert plugin_state is not None and plugin_state.version == "v1beta1.DRAPlugin"
        _setup(kube, node, driver, namespace)
        _pod(kube, namespace, "old", node)
        until(
            lambda: (
                (p := kube.get(f"/api/v1/namespaces/{namespace}/pods/old")) and p["status"].get("phase") == "Running"
            ),
            "pod Running through v1beta1",
        )
    finally:
        plugin.stop()


def test_slices_of_a_plugin_gone_for_the_grace_period_are_deleted(
    kube: Kube, sim_node: Callable[..., SimNode], namespace: str
) -> None:
    node = sim_node(slice_grace_s=2.0)
    driver = f"{node.name}.example.com"
    plugin = TestPlugin(driver, node.kubelet.registry_dir, node.kubelet.plugins_dir).start()
    until(lambda: node.kubelet.watcher.plugin(driver), "registration")
    _setup(kube, node, driver, namespace)
    selector = f"spec.nodeName={node.name},spec.driver={driver}"
    assert len(kube.list(f"{R}/resourceslices", fieldSelector=selector)) == 1
    plugin.stop()
    until(lambda: not kube.list(f"{R}/resourceslices", fieldSelector=selector), "slices deleted", timeout=30)
