"""The plugin node keeps each claim's state on the API server and the hardware honest: status.devices for claims
with opaque configs (written as kubectl writes them), and a claim whose GPU is lost during unprepare."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import yaml

from api.gen.dra.v1 import api_pb2_grpc
from api.partitioning import Mig
from dra_driver.classes import class_name
from dra_driver.k8s import Kube
from dra_driver.kubeletplugin import protocol as proto
from e2e import claims
from e2e.conftest import SimNode
from e2e.fixtures import Sandbox
from e2e.plugin_node import DRIVER, PluginNode
from e2e.plugin_pods import claim_with_status, delete_all, running, spec_of
from e2e.wait import until
from kubelet_plugin.checkpoint import Checkpoint
from sandbox.nodes import register_node

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed")]
R = "/apis/resource.k8s.io/v1"


def _mps(kind: str, percentage: int) -> dict[str, Any]:
    return {
        "apiVersion": "gpu.dra-driver.dev/v1alpha1",
        "kind": kind,
        "sharing": {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": percentage}},
    }


@pytest.fixture
def mixed_node(sandbox: Sandbox, kube: Kube, sim_node: Callable[..., SimNode]) -> Iterator[PluginNode]:
    """A DGX H100 node partitioned dynamically, except GPU 7: time-sliced."""
    node = sim_node("mixed")
    plugin = PluginNode.create(node.name, sandbox.kubeconfig, "dgx-h100", Mig(), root=node.root)
    (plugin.root / "partitioning.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "gpu.dra-driver.dev/v1alpha1",
                "kind": "PartitioningConfig",
                "defaultMode": "mig",
                "nodes": [{"gpus": [{"index": 7, "mode": "timeslice:4"}]}],
            }
        )
    )
    plugin.start(kube)
    yield plugin
    plugin.stop()
    for s in kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={plugin.name}"):
        kube.delete(f"{R}/resourceslices/{s['metadata']['name']}")


def _create_as_kubectl(kube: Kube, path: str, obj: dict[str, Any]) -> None:
    """Create ``obj`` the way ``kubectl create -f x.yaml`` does: the server stores opaque parameters as the
    compact JSON it converts the YAML into (a Python client's JSON keeps its spaces)."""
    kube.request("POST", path, yaml.safe_dump(obj), content_type="application/yaml")


def _kubectl_template(kube: Kube, ns: str, name: str, device_class: str, parameters: dict[str, Any] | None) -> str:
    devices: dict[str, Any] = {"requests": [{"name": "gpu", "exactly": {"deviceClassName": device_class}}]}
    if parameters:
        devices["config"] = [{"opaque": {"driver": DRIVER, "parameters": parameters}}]
    body = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate", "metadata": {"name": name}}
    _create_as_kubectl(
        kube, f"{R}/namespaces/{ns}/resourceclaimtemplates", {**body, "spec": {"spec": {"devices": devices}}}
    )
    return name


def test_status_devices_is_written_for_claims_with_opaque_config_from_claim_and_class(
    mixed_node: PluginNode, kube: Kube, namespace: str
) -> None:
    """Claims created with kubectl: the API server refuses a PUT of such a claim's status (it re-encodes the
    opaque parameters differently); the driver's patch of status.devices alone goes through."""
    node = mixed_node
    mig_class = kube.get(f"{R}/deviceclasses/{class_name('mig-1g-10gb')}")
    assert mig_class is not None
    configured_class = f"mps-{namespace}.dra-driver.dev"  # a class-level config (source FromClass)
    _create_as_kubectl(
        kube,
        f"{R}/deviceclasses",
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "DeviceClass",
            "metadata": {"name": configured_class},
            "spec": {
                "selectors": mig_class["spec"]["selectors"],
                "config": [{"opaque": {"driver": DRIVER, "parameters": _mps("MigDeviceConfig", 25)}}],
            },
        },
    )
    try:
        time_slicing = {
            "apiVersion": "gpu.dra-driver.dev/v1alpha1",
            "kind": "GpuConfig",
            "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Medium"}},
        }
        templates = {
            "mps": _kubectl_template(kube, namespace, "mps", class_name("mig-3g-40gb"), _mps("MigDeviceConfig", 50)),
            "timeslicing": _kubectl_template(kube, namespace, "ts", class_name("timeslice"), time_slicing),
            "class": _kubectl_template(kube, namespace, "class", configured_class, None),
        }
        pods = {kind: claims.pod(kube, namespace, node.name, t) for kind, t in templates.items()}
        running(kube, namespace, list(pods.values()), node)
        state = node.machine.state()["gpus"]
        uuids = {g["uuid"] for g in state} | {
            ci["uuid"] for g in state for gi in g["gpuInstances"] for ci in gi["computeInstances"]
        }
        for kind, pod in pods.items():
            claim = claim_with_status(kube, namespace, pod)
            (result,) = claim["status"]["allocation"]["devices"]["results"]
            sources = {c["source"] for c in claim["status"]["allocation"]["devices"].get("config") or []}
            assert sources == ({"FromClass"} if kind == "class" else {"FromClaim"})
            (entry,) = claim["status"]["devices"]
            assert (entry["driver"], entry["pool"], entry["device"]) == (DRIVER, node.name, result["device"])
            assert entry["data"]["uuid"] in uuids
            assert f"NVIDIA_VISIBLE_DEVICES={entry['data']['uuid']}" in json.dumps(spec_of(node, claim))
        assert "could not record device status" not in node.log_text()
        delete_all(kube, namespace, list(pods.values()))
    finally:
        kube.delete(f"{R}/deviceclasses/{configured_class}")


def _allocated_claim(kube: Kube, ns: str, node: str, device_class: str) -> proto.ClaimRef:
    """A claim allocated on ``node`` through a pod that no kubelet runs (the test plays the kubelet)."""
    kube.create(
        f"{R}/namespaces/{ns}/resourceclaims",
        {
            "metadata": {"name": "c"},
            "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": device_class}}]}},
        },
    )
    kube.create(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": "p"},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": node},
                "containers": [
                    {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"claims": [{"name": "gpu"}]}}
                ],
                "resourceClaims": [{"name": "gpu", "resourceClaimName": "c"}],
            },
        },
    )
    claim = until(
        lambda: (
            (c := kube.get(f"{R}/namespaces/{ns}/resourceclaims/c")) and c.get("status", {}).get("reservedFor") and c
        ),
        "claim allocated",
        timeout=90,
    )
    return proto.ClaimRef(ns, claim["metadata"]["uid"], "c")


def test_gpu_lost_during_unprepare_keeps_the_claim_and_the_rescan_finishes_it_when_the_gpu_returns(
    sandbox: Sandbox, kube: Kube, namespace: str
) -> None:
    name = f"lost-{uuid.uuid4().hex[:6]}"
    api = sandbox.api_client()
    sim = register_node(api, name)  # no kubelet: nothing but this test and the plugin's re-scan unprepares
    node = PluginNode.create(name, sandbox.kubeconfig, "single-a100", Mig())
    try:
        node.start(kube)
        ref = _allocated_claim(kube, namespace, name, class_name("mig-1g-5gb"))
        with grpc.insecure_channel(f"unix://{node.dra_socket()}") as channel:
            stub = api_pb2_grpc.DRAPluginStub(channel)
            prepared = proto.prepare_results_from_pb(
                stub.NodePrepareResources(proto.prepare_request(proto.DRA_V1, [ref]), timeout=30)
            )
            assert prepared[ref.uid].error == ""
            assert len(node.machine.mig_partitions()) == 1 and len(list(node.cdi_dir.glob("*.json"))) == 1

            node.machine.set_fault(0, "lost")
            unprepare = proto.unprepare_request(proto.DRA_V1, [ref])
            error = proto.unprepare_errors_from_pb(stub.NodeUnprepareResources(unprepare, timeout=30))[ref.uid]
            assert error.startswith("GPU 0 did not answer while destroying MIG partition 1g.5gb at slice ")
            assert f"of claim {namespace}/c" in error and "will retry" in error
            assert len(node.machine.mig_partitions()) == 1  # still there, and still owned:
            assert Checkpoint.load(node.checkpoint).claims()[ref.uid].state == "UnprepareStarted"

            node.machine.set_fault(0, None)  # the GPU answers again
            until(
                lambda: node.machine.mig_partitions() == [] and not list(node.cdi_dir.glob("*.json")),
                "the re-scan to finish the unprepare",
                timeout=30,
            )
            assert Checkpoint.load(node.checkpoint).claims() == {}
            assert node.alive() and node.starts == 1, "finished without a plugin restart"
            assert "finished the pending unprepare" in node.log_text()
            assert proto.unprepare_errors_from_pb(stub.NodeUnprepareResources(unprepare, timeout=30)) == {ref.uid: ""}
    finally:
        node.stop()
        sim.stop()
        api.close()
        kube.delete(f"/api/v1/nodes/{name}")
        for s in kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={name}"):
            kube.delete(f"{R}/resourceslices/{s['metadata']['name']}")
