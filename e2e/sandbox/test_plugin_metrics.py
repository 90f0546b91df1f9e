"""The plugin's Prometheus endpoint end to end: real scheduler, simulated kubelet, simulated NVML, the plugin
process serving ``/metrics``; a prepare and an unprepare move what a scrape reads (docs/metrics.md)."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.partitioning import Mig
from dra_driver.classes import class_name
from dra_driver.k8s import Kube
from e2e import claims
from e2e.conftest import SimNode
from e2e.fixtures import Sandbox
from e2e.plugin_node import DRIVER, PluginNode
from e2e.plugin_pods import delete_all, running
from e2e.wait import until
from sandbox.ports import LOOPBACK, pick_free_ports

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed")]
R = "/apis/resource.k8s.io/v1"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def scrape_until(url: str, check: Callable[[Samples], bool], what: str) -> Samples:
    def attempt() -> Samples | None:
        samples = scrape(url)
        return samples if check(samples) else None

    return until(attempt, what, timeout=30)


@pytest.fixture
def metrics_node(sandbox: Sandbox, kube: Kube, sim_node: Callable[..., SimNode]) -> Iterator[tuple[PluginNode, str]]:
    node = sim_node("metrics")
    plugin = PluginNode.create(node.name, sandbox.kubeconfig, "single-a100", Mig(), root=node.root)
    (port,) = pick_free_ports(1)
    plugin.start(kube, extra=("--metrics-port", str(port), "--metrics-address", LOOPBACK))
    yield plugin, f"http://{LOOPBACK}:{port}/metrics"
    plugin.stop()
    for s in kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={plugin.name}"):
        kube.delete(f"{R}/resourceslices/{s['metadata']['name']}")


def test_a_scrape_sees_the_published_pool_then_a_prepare_and_an_unprepare_move_the_metrics(
    metrics_node: tuple[PluginNode, str], kube: Kube, namespace: str
) -> None:
    node, url = metrics_node

    def published() -> int:
        query = f"spec.nodeName={node.name},spec.driver={DRIVER}"
        return sum(len(s["spec"].get("devices") or []) for s in kube.list(f"{R}/resourceslices", fieldSelector=query))

    # the plugin registers before it publishes: wait for both the gauge and the slices the API server holds
    before = scrape_until(url, lambda s: value(s, "dra_gpu_published_devices") > 0, "the published-devices gauge")
    gauge = value(before, "dra_gpu_published_devices")
    until(lambda: published() == gauge, f"the {gauge:g} published devices in the API server", timeout=30)
    assert gauge == 7 + 7 + 4 + 3 + 2 + 1 + 1 + 1
    assert value(before, "dra_gpu_slice_writes_total", operation="create") >= 2  # counters + devices
    assert value(before, "dra_gpu_prepare_duration_seconds_count", result="success") == 0
    assert value(before, "dra_gpu_prepared_devices", kind="mig") == 0
    (gpu,) = node.machine.state()["gpus"]
    assert value(before, "dra_gpu_device_health", uuid=gpu["uuid"], index="0") == 1

    pods = [claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("mig-1g-5gb")))]
    running(kube, namespace, pods, node)
    prepared = scrape(url)
    assert value(prepared, "dra_gpu_prepare_duration_seconds_count", result="success") >= 1
    assert value(prepared, "dra_gpu_prepare_duration_seconds_sum", result="success") > 0
    assert value(prepared, "dra_gpu_prepared_devices", kind="mig") == 1
    assert value(prepared, "dra_gpu_prepare_errors_total", reason="internal") == 0

    delete_all(kube, namespace, pods)
    after = scrape_until(
        url, lambda s: value(s, "dra_gpu_prepared_devices", kind="mig") == 0, "the unprepare in the prepared gauge"
    )
    assert value(after, "dra_gpu_unprepare_duration_seconds_count", result="success") >= 1


def test_a_claim_with_a_malformed_config_is_counted_as_a_config_error(
    metrics_node: tuple[PluginNode, str], kube: Kube, namespace: str
) -> None:
    node, url = metrics_node
    bad = {
        "opaque": {
            "driver": DRIVER,
            "parameters": {"apiVersion": "gpu.dra-driver.dev/v1alpha1", "kind": "MigDeviceConfig", "sharing": 5},
        }
    }
    claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("mig-1g-5gb"), config=[bad]))
    failed = scrape_until(
        url, lambda s: value(s, "dra_gpu_prepare_errors_total", reason="config") > 0, "a config prepare error"
    )
    assert value(failed, "dra_gpu_prepare_duration_seconds_count", result="error") >= 1
    assert value(failed, "dra_gpu_prepared_devices", kind="mig") == 0
