"""The kubelet plugin end to end: real scheduler, simulated kubelet, simulated NVML, the plugin process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.partitioning import Mig, Shared, TimeSlice, Whole
from dra_driver.classes import class_name
from dra_driver.k8s import Kube
from e2e import claims
from e2e.plugin_node import DRIVER, PluginNode
from e2e.plugin_pods import claim_with_status, delete_all, running, spec_of, status_uuids
from e2e.wait import until
from kubelet_plugin.checkpoint import Checkpoint
from nvml_sim.driver_install import calls_log
from sandbox.demo import EXAMPLES, apply
from tests.cdi.schema_check import schema_errors

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed")]
R = "/apis/resource.k8s.io/v1"


def _minimal_version(spec: dict[str, Any]) -> str:
    """CDI's rules for what our specs can contain: a device name starting with a digit (claim UIDs) needs
    0.5.0, a mount with a type 0.4.0, anything else 0.3.0."""
    if any(d["name"][0].isdigit() for d in spec["devices"]):
        return "0.5.0"
    edits = [spec["containerEdits"], *(d["containerEdits"] for d in spec["devices"])]
    if any("type" in m for e in edits for m in e.get("mounts", [])):
        return "0.4.0"
    return "0.3.0"


def _check_spec(spec: dict[str, Any], uuids: list[str]) -> None:
    assert schema_errors(spec) == []
    assert spec["cdiVersion"] == _minimal_version(spec)
    env = spec["containerEdits"]["env"]
    assert f"NVIDIA_VISIBLE_DEVICES={','.join(uuids)}" in env and f"CUDA_VISIBLE_DEVICES={','.join(uuids)}" in env
    assert "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64" in env
    mounts = {m["containerPath"]: m for m in spec["containerEdits"]["mounts"]}
    cuda = mounts["/usr/local/nvidia/lib64/libcuda.so.1"]  # from the node's simulated driver installation
    assert "/driver-root/" in cuda["hostPath"] and Path(cuda["hostPath"]).is_file() and "ro" in cuda["options"]


def test_whole_gpu_claims_run_with_their_gpu_uuid(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("l4", Whole())
    pods = [
        claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("gpu"))) for _ in range(2)
    ]
    running(kube, namespace, pods, node)
    gpu_uuids = {g["uuid"] for g in node.machine.state()["gpus"]}
    for p in pods:
        claim = claim_with_status(kube, namespace, p)
        (uuid,) = status_uuids(claim)
        assert uuid in gpu_uuids
        _check_spec(spec_of(node, claim), [uuid])
    delete_all(kube, namespace, pods)
    assert list(node.cdi_dir.glob("*.json")) == []


def test_a_claim_can_select_gpus_by_the_pcie_root_and_numa_node_read_from_sysfs(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("dgx-a100", Whole())  # GPUs 4 and 5 share root complex pci0000:80, on NUMA node 1
    std = 'device.attributes["resource.kubernetes.io"]'
    selector = f'{std}.pcieRoot == "pci0000:80" && {std}.numaNode == 1'
    pod = claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("gpu"), [selector], 2))
    running(kube, namespace, [pod], node)
    assert sorted(claims.allocated_devices(kube, namespace, pod) or []) == ["gpu-4", "gpu-5"]
    delete_all(kube, namespace, [pod])


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
    running(kube, namespace, [pod], node)
    claim = claim_with_status(kube, namespace, pod)
    results = claim["status"]["allocation"]["devices"]["results"]
    assert [r["device"] for r in results] == ["gpu-0-shared", "gpu-0-shared"]
    shares = {r["shareID"] for r in results}
    assert len(shares) == 2
    assert {d["shareID"] for d in claim["status"]["devices"]} == shares
    names = [d["name"] for d in spec_of(node, claim)["devices"]]
    assert len(set(names)) == 2
    delete_all(kube, namespace, [pod])
    assert list(node.cdi_dir.glob("*.json")) == []


def test_three_mig_profiles_on_one_gpu_are_created_and_destroyed(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("single-a100", Mig())
    pods = [
        claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name(c)))
        for c in ("mig-1g-5gb", "mig-2g-10gb", "mig-3g-20gb")
    ]
    running(kube, namespace, pods, node)
    state = node.machine.state()["gpus"][0]
    mig_uuids = {ci["uuid"] for gi in state["gpuInstances"] for ci in gi["computeInstances"]}
    assert len(state["gpuInstances"]) == 3 and len(mig_uuids) == 3
    for p in pods:
        claim = claim_with_status(kube, namespace, p)
        (uuid,) = status_uuids(claim)
        assert uuid in mig_uuids
        spec = spec_of(node, claim)
        _check_spec(spec, [uuid])
        nodes = [n["path"] for n in spec["devices"][0]["containerEdits"]["deviceNodes"]]
        assert nodes[0] == "/dev/nvidia0" and sum(n.startswith("/dev/nvidia-caps/nvidia-cap") for n in nodes) == 2
    delete_all(kube, namespace, pods)
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
    running(kube, namespace, pods, node)
    uuid = node.machine.state()["gpus"][0]["uuid"]
    set_long = ["compute-policy", "-i", uuid, "--set-timeslice", "3"]
    assert [c["argv"] for c in _calls(node) if "--set-timeslice" in c["argv"]] == [set_long]  # the first pod sets it
    delete_all(kube, namespace, pods)
    resets = [c["argv"] for c in _calls(node) if "--set-timeslice" in c["argv"]][1:]
    assert resets == [["compute-policy", "-i", uuid, "--set-timeslice", "0"]]  # the last pod resets it


def _calls(node: PluginNode) -> list[dict[str, Any]]:
    """What the plugin ran of the node's driver tools (the stand-ins of its simulated driver root record it)."""
    log = calls_log(node.root / "driver-root")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


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
    running(kube, namespace, ["mps"], node)
    claim = claim_with_status(kube, namespace, name=name)
    (uuid,) = status_uuids(claim)
    spec = spec_of(node, claim)
    env = spec["devices"][0]["containerEdits"]["env"]
    assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=50" in env
    assert f"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT={uuid}=10240M" in env
    assert schema_errors(spec) == []
    # one MPS control daemon for the MIG device, started with the claim's limits; the container gets its pipes
    (pipe,) = [
        m["hostPath"] for m in spec["devices"][0]["containerEdits"]["mounts"] if m["containerPath"] == "/tmp/nvidia-mps"
    ]
    daemon = [c for c in _calls(node) if c["program"] == "nvidia-cuda-mps-control"]
    assert [(c["argv"], c.get("stdin")) for c in daemon] == [
        (["-d"], None),
        ([], ["set_default_active_thread_percentage 50"]),
        ([], [f"set_default_device_pinned_mem_limit {uuid} 10240M"]),
    ]
    assert {c["env"]["CUDA_VISIBLE_DEVICES"] for c in daemon} == {uuid}
    assert {c["env"]["CUDA_MPS_PIPE_DIRECTORY"] for c in daemon} == {pipe}
    assert (Path(pipe) / "nvidia-cuda-mps-control.pid").exists()
    delete_all(kube, namespace, ["mps"])
    assert node.machine.mig_partitions() == [] and list(node.cdi_dir.glob("*.json")) == []
    assert [c.get("stdin") for c in _calls(node) if c["program"] == "nvidia-cuda-mps-control"][-1] == ["quit"]
    assert not Path(pipe).exists()


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
    assert Checkpoint.load(node.checkpoint).claims() == {}
    pod = kube.get(f"/api/v1/namespaces/{namespace}/pods/{p}")
    assert pod is not None and pod["status"]["phase"] == "Pending"


def test_the_documented_example_runs_and_is_undone(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("dgx-a100", Mig())
    objects = [d for d in yaml.safe_load_all((EXAMPLES / "mig-and-whole-gpu.yaml").read_text()) if d]
    apply(kube, objects, namespace)
    pods = [o["metadata"]["name"] for o in objects if o["kind"] == "Pod"]
    running(kube, namespace, pods, node)
    devices = {p: (claims.allocated_devices(kube, namespace, p) or [""])[0] for p in pods}
    assert "-mig-1g-5gb-" in devices["inference"] and "-mig-3g-20gb-" in devices["notebook"]
    whole_gpu = devices["training"]
    assert whole_gpu.count("-") == 1  # gpu-<minor>: a whole GPU, on a GPU without the MIG devices
    assert not devices["inference"].startswith(whole_gpu + "-") and not devices["notebook"].startswith(whole_gpu + "-")
    partitions = node.machine.mig_partitions()
    assert len(partitions) == 3  # 1g, 3g, and the whole MIG-mode GPU as one full-size partition
    assert (int(whole_gpu.split("-")[1]), 0) in {(gpu, gi) for gpu, gi, _ in partitions}  # GI 0 = the 7g slot
    delete_all(kube, namespace, pods)
    assert node.machine.mig_partitions() == [] and list(node.cdi_dir.glob("*.json")) == []
