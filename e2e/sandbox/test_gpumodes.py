"""NodeGpuModes end to end: the CRD as shipped, the real plugin process watching its node's object, the real
scheduler allocating what it republishes, the simulated NVML changing the GPUs (docs/gpumodes.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from api.gpumodes import API_VERSION, KIND, PLURAL
from api.partitioning import Whole
from dra_driver.classes import class_name
from dra_driver.k8s import ApiError, Kube, resource_path
from dra_driver.resourceslice.probe import probe
from e2e import claims
from e2e.plugin_node import PluginNode
from e2e.plugin_pods import delete_all, running
from e2e.wait import until

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed", "gpumodes_crd")]
R = "/apis/resource.k8s.io/v1"
DEADLINE_S = 60


def _desire(kube: Kube, node: str, gpus: list[dict[str, Any]]) -> int:
    obj = kube.create(
        resource_path(API_VERSION, PLURAL),
        {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": node}, "spec": {"gpus": gpus}},
    )
    return int(obj["metadata"]["generation"])


def _gpu_status(kube: Kube, node: str, uuid: str, generation: int) -> dict[str, Any] | None:
    """The GPU's status entry once the plugin has acted on ``generation``."""
    obj = kube.get(resource_path(API_VERSION, PLURAL, node)) or {}
    status = obj.get("status") or {}
    if status.get("observedGeneration") != generation:
        return None
    return next((g for g in status.get("gpus") or [] if g["uuid"] == uuid), None)


def _published(kube: Kube, node: str) -> list[str]:
    slices = kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={node}")
    return [d["name"] for s in slices for d in s["spec"].get("devices") or []]


def _gpu(node: PluginNode, index: int) -> dict[str, Any]:
    gpu: dict[str, Any] = node.machine.state()["gpus"][index]
    return gpu


def test_idle_gpu_switches_to_timeslice_and_its_replicas_are_published(
    gpu_node: Callable[..., PluginNode], kube: Kube
) -> None:
    node = gpu_node("dgx-h100", Whole())
    gpu = _gpu(node, 0)
    generation = _desire(kube, node.name, [{"uuid": gpu["uuid"], "mode": "timeslice:4"}])
    entry = until(
        lambda: (e := _gpu_status(kube, node.name, gpu["uuid"], generation)) and e["state"] == "Applied" and e,
        f"GPU 0 Applied (plugin log: {node.logs[-1]})",
        timeout=DEADLINE_S,
    )
    assert entry["mode"] == "timeslice:4"
    replicas = until(
        lambda: [d for d in _published(kube, node.name) if d.startswith(f"gpu-{gpu['minor']}-ts-")],
        "time-slice replicas published",
        timeout=DEADLINE_S,
    )
    assert sorted(replicas) == [f"gpu-{gpu['minor']}-ts-{k}" for k in range(4)]
    assert _gpu(node, 0)["mig"]["current"] == 0  # time-slicing needs MIG off
    obj = kube.get(resource_path(API_VERSION, PLURAL, node.name)) or {}
    (condition,) = obj["status"]["conditions"]
    assert (condition["type"], condition["status"]) == ("Applied", "True")


def test_gpu_with_a_prepared_claim_stays_pending_naming_it_until_the_claim_ends(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("dgx-h100", Whole())
    pod = claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("gpu")))
    running(kube, namespace, [pod], node)
    claim = claims.claim_of(kube, namespace, pod)
    (device,) = claims.allocated_devices(kube, namespace, pod) or []
    assert claim is not None
    gpu = next(g for g in node.machine.state()["gpus"] if device == f"gpu-{g['minor']}")
    generation = _desire(kube, node.name, [{"uuid": gpu["uuid"], "mode": "timeslice:2"}])
    entry = until(
        lambda: _gpu_status(kube, node.name, gpu["uuid"], generation),
        f"status of {device} (plugin log: {node.logs[-1]})",
        timeout=DEADLINE_S,
    )
    assert (entry["state"], entry["mode"]) == ("Pending", "whole")
    assert f"claim {namespace}/{claim['metadata']['name']} is" in entry["reason"]
    assert not [d for d in _published(kube, node.name) if d.startswith(f"{device}-ts-")]
    delete_all(kube, namespace, [pod])  # the claim ends: the plugin looks again and applies
    until(
        lambda: (e := _gpu_status(kube, node.name, gpu["uuid"], generation)) and e["state"] == "Applied",
        f"{device} Applied once its claim is gone",
        timeout=DEADLINE_S,
    )
    until(lambda: f"{device}-ts-1" in _published(kube, node.name), "its replicas published", timeout=DEADLINE_S)


def test_impossible_mig_layout_is_refused_and_leaves_no_mig_instance(
    gpu_node: Callable[..., PluginNode], kube: Kube
) -> None:
    node = gpu_node("dgx-h100", Whole())
    gpu = _gpu(node, 1)
    generation = _desire(kube, node.name, [{"uuid": gpu["uuid"], "mode": "mig", "migLayout": ["7g.80gb", "1g.10gb"]}])
    entry = until(
        lambda: _gpu_status(kube, node.name, gpu["uuid"], generation),
        f"status of GPU 1 (plugin log: {node.logs[-1]})",
        timeout=DEADLINE_S,
    )
    assert (entry["state"], entry["mode"]) == ("Refused", "whole")
    expected = "leave migLayout out" if probe(kube).partitionable_devices else "compute slices"
    assert expected in entry["reason"]
    assert _gpu(node, 1)["gpuInstances"] == []
    assert node.machine.mig_partitions() == []


def test_api_server_refuses_a_mode_the_plugin_could_not_read(kube: Kube) -> None:
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "no-such-node"},
        "spec": {"gpus": [{"uuid": "GPU-00000000-0000-0000-0000-000000000000", "mode": "timeslice:1"}]},
    }
    with pytest.raises(ApiError) as err:
        kube.create(resource_path(API_VERSION, PLURAL), body)
    assert err.value.status == 422 and "spec.gpus[0].mode" in str(err.value)
    body["spec"]["gpus"][0] |= {"mode": "whole", "migLayout": ["1g.5gb"]}  # type: ignore[index]
    with pytest.raises(ApiError) as err:
        kube.create(resource_path(API_VERSION, PLURAL), body)
    assert err.value.status == 422 and "migLayout is only valid with mode mig" in str(err.value)
