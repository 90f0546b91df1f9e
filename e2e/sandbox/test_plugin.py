"""The kubelet plugin end to end: real scheduler, simulated kubelet, simulated NVML, the plugin process."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import yaml

from api.gen.dra.v1 import api_pb2_grpc
from api.partitioning import GpuMode, Mig, Shared, TimeSlice, Whole
from dra_driver.classes import class_name
from dra_driver.k8s import Kube
from dra_driver.kubeletplugin import protocol as proto
from e2e import claims
from e2e.conftest import SimNode
from e2e.fixtures import Sandbox
from e2e.plugin_node import DRIVER, PluginNode
from e2e.wait import until
from sandbox.demo import EXAMPLES, apply
from sandbox.nodes import register_node
from tests.cdi.schema_check import schema_errors

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed")]
R = "/apis/resource.k8s.io/v1"


@pytest.fixture
def gpu_node(sandbox: Sandbox, kube: Kube, sim_node: Callable[..., SimNode]) -> Iterator[Callable[..., PluginNode]]:
    started: list[PluginNode] = []

    def make(profile: str, mode: GpuMode) -> PluginNode:
        node = sim_node("gpu")
        plugin = PluginNode.create(node.name, sandbox.kubeconfig, profile, mode, root=node.root)
        plugin.start(kube)
        started.append(plugin)
        return plugin

    yield make
    for p in started:
        p.stop()
        for s in kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={p.name}"):
            kube.delete(f"{R}/resourceslices/{s['metadata']['name']}")


def _running(kube: Kube, ns: str, pods: list[str], node: PluginNode) -> None:
    until(
        lambda: all(
            (kube.get(f"/api/v1/namespaces/{ns}/pods/{p}") or {}).get("status", {}).get("phase") == "Running"
            for p in pods
        ),
        f"{pods} Running (plugin log: {node.logs[-1]})",
        timeout=90,
    )


def _delete_all(kube: Kube, ns: str, pods: list[str]) -> None:
    for p in pods:
        kube.delete(f"/api/v1/namespaces/{ns}/pods/{p}")
    until(lambda: all(kube.get(f"/api/v1/namespaces/{ns}/pods/{p}") is None for p in pods), "pods gone", timeout=90)


def _spec_of(node: PluginNode, claim: dict[str, Any]) -> dict[str, Any]:
    (path,) = [p for p in node.cdi_dir.glob("*.json") if claim["metadata"]["uid"] in p.name]
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


def _minimal_version(spec: dict[str, Any]) -> str:
    """CDI's rules for what our specs can contain: a device name starting with a digit (claim UIDs) needs
    0.5.0, a mount with a type 0.4.0, anything else 0.3.0."""
    if any(d["name"][0].isdigit() for d in spec["devices"]):
        return "0.5.0"
    if any("type" in m for d in spec["devices"] for m in d["containerEdits"].get("mounts", [])):
        return "0.4.0"
    return "0.3.0"


def _check_spec(spec: dict[str, Any], uuids: list[str]) -> None:
    assert schema_errors(spec) == []
    assert spec["cdiVersion"] == _minimal_version(spec)
    env = spec["containerEdits"]["env"]
    assert f"NVIDIA_VISIBLE_DEVICES={','.join(uuids)}" in env and f"CUDA_VISIBLE_DEVICES={','.join(uuids)}" in env


def _status_uuids(claim: dict[str, Any]) -> list[str]:
    return [d["data"]["uuid"] for d in claim["status"].get("devices") or []]


def _claim_with_status(kube: Kube, ns: str, pod: str | None = None, name: str | None = None) -> dict[str, Any]:
    """The pod's (or named) claim once the plugin has written its device status (written off the prepare path)."""

    def get() -> dict[str, Any] | None:
        claim = claims.claim_of(kube, ns, pod) if pod else kube.get(f"{R}/namespaces/{ns}/resourceclaims/{name}")
        return claim if claim and _status_uuids(claim) else None

    return until(get, "status.devices on the claim", timeout=30)


def test_whole_gpu_claims_run_with_their_gpu_uuid(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("l4", Whole())
    pods = [
        claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("gpu"))) for _ in range(2)
    ]
    _running(kube, namespace, pods, node)
    gpu_uuids = {g["uuid"] for g in node.machine.state()["gpus"]}
    for p in pods:
        claim = _claim_with_status(kube, namespace, p)
        (uuid,) = _status_uuids(claim)
        assert uuid in gpu_uuids
        _check_spec(_spec_of(node, claim), [uuid])
    _delete_all(kube, namespace, pods)
    assert list(node.cdi_dir.glob("*.json")) == []


def test_a_claim_given_one_shared_gpu_twice_runs_with_a_cdi_device_and_a_status_entry_per_share(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    """Two requests on the shared class: the real scheduler gives both the same device with distinct share IDs;
    the plugin names one CDI device per share and writes one status entry per share (with its shareID)."""
    node = gpu_node("single-a100", Shared())
    shared = {"deviceClassName": class_name("shared")}
    devices = {"requests": [{"name": "a", "exactly": shared}, {"name": "b", "exactly": shared}]}
    kube.create(
        f"{R}/namespaces/{namespace}/resourceclaimtemplates",
        {"metadata": {"name": "twice"}, "spec": {"spec": {"devices": devices}}},
    )
    pod = claims.pod(kube, namespace, node.name, "twice")
    _running(kube, namespace, [pod], node)
    claim = _claim_with_status(kube, namespace, pod)
    results = claim["status"]["allocation"]["devices"]["results"]
    assert [r["device"] for r in results] == ["gpu-0-shared", "gpu-0-shared"]
    shares = {r["shareID"] for r in results}
    assert len(shares) == 2
    assert {d["shareID"] for d in claim["status"]["devices"]} == shares
    names = [d["name"] for d in _spec_of(node, claim)["devices"]]
    assert len(set(names)) == 2
    _delete_all(kube, namespace, [pod])
    assert list(node.cdi_dir.glob("*.json")) == []


def test_three_mig_profiles_on_one_gpu_are_created_and_destroyed(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("single-a100", Mig())
    pods = [
        claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name(c)))
        for c in ("mig-1g-5gb", "mig-2g-10gb", "mig-3g-20gb")
    ]
    _running(kube, namespace, pods, node)
    state = node.machine.state()["gpus"][0]
    mig_uuids = {ci["uuid"] for gi in state["gpuInstances"] for ci in gi["computeInstances"]}
    assert len(state["gpuInstances"]) == 3 and len(mig_uuids) == 3
    for p in pods:
        claim = _claim_with_status(kube, namespace, p)
        (uuid,) = _status_uuids(claim)
        assert uuid in mig_uuids
        spec = _spec_of(node, claim)
        _check_spec(spec, [uuid])
        nodes = [n["path"] for n in spec["devices"][0]["containerEdits"]["deviceNodes"]]
        assert nodes[0] == "/dev/nvidia0" and sum(n.startswith("/dev/nvidia-caps/nvidia-cap") for n in nodes) == 2
    _delete_all(kube, namespace, pods)
    assert node.machine.mig_partitions() == []
    assert list(node.cdi_dir.glob("*.json")) == []


def test_time_slice_replicas_share_the_interval_and_reset_it(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("single-a100", TimeSlice(4))
    config = {
        "opaque": {
            "driver": DRIVER,
            "parameters": {
                "apiVersion": "gpu.dra-driver.dev/v1alpha1",
                "kind": "GpuConfig",
                "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Long"}},
            },
        }
    }
    t = claims.template(kube, namespace, class_name("timeslice"), config=[config])
    pods = [claims.pod(kube, namespace, node.name, t) for _ in range(2)]
    _running(kube, namespace, pods, node)
    slices = json.loads((node.root / "state" / "timeslice.json").read_text())
    assert list(slices.values()) == ["Long"]
    _delete_all(kube, namespace, pods)
    assert json.loads((node.root / "state" / "timeslice.json").read_text()) == {}


def test_mig_device_with_mps_config_gets_mps_limits(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("dgx-h100", Mig())
    name = "mps-claim"
    kube.create(
        f"{R}/namespaces/{namespace}/resourceclaims",
        {
            "metadata": {"name": name},
            "spec": {
                "devices": {
                    "requests": [{"name": "gpu", "exactly": {"deviceClassName": class_name("mig-3g-40gb")}}],
                    "config": [
                        {
                            "requests": ["gpu"],
                            "opaque": {
                                "driver": DRIVER,
                                "parameters": {
                                    "apiVersion": "gpu.dra-driver.dev/v1alpha1",
                                    "kind": "MigDeviceConfig",
                                    "sharing": {
                                        "strategy": "MPS",
                                        "mpsConfig": {
                                            "defaultActiveThreadPercentage": 50,
                                            "defaultPinnedDeviceMemoryLimit": "10Gi",
                                        },
                                    },
                                },
                            },
                        }
                    ],
                }
            },
        },
    )
    kube.create(
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "metadata": {"name": "mps"},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": node.name},
                "containers": [
                    {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"claims": [{"name": "gpu"}]}}
                ],
                "resourceClaims": [{"name": "gpu", "resourceClaimName": name}],
            },
        },
    )
    _running(kube, namespace, ["mps"], node)
    claim = _claim_with_status(kube, namespace, name=name)
    (uuid,) = _status_uuids(claim)
    spec = _spec_of(node, claim)
    env = spec["devices"][0]["containerEdits"]["env"]
    assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=50" in env
    assert f"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT={uuid}=10240M" in env
    assert schema_errors(spec) == []
    _delete_all(kube, namespace, ["mps"])
    assert node.machine.mig_partitions() == [] and list(node.cdi_dir.glob("*.json")) == []


def test_malformed_opaque_config_fails_prepare_naming_the_field_and_leaves_nothing(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("single-a100", Mig())
    bad = {
        "opaque": {
            "driver": DRIVER,
            "parameters": {
                "apiVersion": "gpu.dra-driver.dev/v1alpha1",
                "kind": "MigDeviceConfig",
                "sharing": {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentag": 5}},
            },
        }
    }
    t = claims.template(kube, namespace, class_name("mig-1g-5gb"), config=[bad])
    p = claims.pod(kube, namespace, node.name, t)
    event = until(
        lambda: next(
            (
                e
                for e in kube.list(f"/api/v1/namespaces/{namespace}/events")
                if e["reason"] == "FailedPrepareDynamicResources"
            ),
            None,
        ),
        "prepare failure event",
    )
    assert "sharing.mpsConfig.defaultActiveThreadPercentag" in event["message"]
    assert "unknown field" in event["message"]
    assert node.machine.mig_partitions() == []
    assert list(node.cdi_dir.glob("*.json")) == []
    assert not node.checkpoint.exists() or json.loads(node.checkpoint.read_text())["claims"] == {}
    pod = kube.get(f"/api/v1/namespaces/{namespace}/pods/{p}")
    assert pod is not None and pod["status"]["phase"] == "Pending"


def test_the_documented_example_runs_and_is_undone(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("dgx-a100", Mig())
    objects = [d for d in yaml.safe_load_all((EXAMPLES / "mig-and-whole-gpu.yaml").read_text()) if d]
    apply(kube, objects, namespace)
    pods = [o["metadata"]["name"] for o in objects if o["kind"] == "Pod"]
    _running(kube, namespace, pods, node)
    devices = {p: (claims.allocated_devices(kube, namespace, p) or [""])[0] for p in pods}
    assert "-mig-1g-5gb-" in devices["inference"] and "-mig-3g-20gb-" in devices["notebook"]
    whole_gpu = devices["training"]
    assert whole_gpu.count("-") == 1  # gpu-<minor>: a whole GPU, on a GPU without the MIG devices
    assert not devices["inference"].startswith(whole_gpu + "-") and not devices["notebook"].startswith(whole_gpu + "-")
    partitions = node.machine.mig_partitions()
    assert len(partitions) == 3  # 1g, 3g, and the whole MIG-mode GPU as one full-size partition
    assert (int(whole_gpu.split("-")[1]), 0) in {(gpu, gi) for gpu, gi, _ in partitions}  # GI 0 = the 7g slot
    _delete_all(kube, namespace, pods)
    assert node.machine.mig_partitions() == [] and list(node.cdi_dir.glob("*.json")) == []


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
        _running(kube, namespace, list(pods.values()), node)
        state = node.machine.state()["gpus"]
        uuids = {g["uuid"] for g in state} | {
            ci["uuid"] for g in state for gi in g["gpuInstances"] for ci in gi["computeInstances"]
        }
        for kind, pod in pods.items():
            claim = _claim_with_status(kube, namespace, pod)
            (result,) = claim["status"]["allocation"]["devices"]["results"]
            sources = {c["source"] for c in claim["status"]["allocation"]["devices"].get("config") or []}
            assert sources == ({"FromClass"} if kind == "class" else {"FromClaim"})
            (entry,) = claim["status"]["devices"]
            assert (entry["driver"], entry["pool"], entry["device"]) == (DRIVER, node.name, result["device"])
            assert entry["data"]["uuid"] in uuids
            assert f"NVIDIA_VISIBLE_DEVICES={entry['data']['uuid']}" in json.dumps(_spec_of(node, claim))
        assert "could not record device status" not in node.log_text()
        _delete_all(kube, namespace, list(pods.values()))
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
            assert json.loads(node.checkpoint.read_text())["claims"][ref.uid]["state"] == "UnprepareStarted"

            node.machine.set_fault(0, None)  # the GPU answers again
            until(
                lambda: node.machine.mig_partitions() == [] and not list(node.cdi_dir.glob("*.json")),
                "the re-scan to finish the unprepare",
                timeout=30,
            )
            assert json.loads(node.checkpoint.read_text())["claims"] == {}
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
