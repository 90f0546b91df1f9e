"""The driver on a real node: the real kubelet v1.37.2 and containerd run pods whose containers see exactly their
GPUs, with the driver's files where the dynamic linker looks; health the real kubelet accepts; clean teardown.

One sandbox (dgx-a100, MIG mode, one real node) for the module; the tests run in file order and share its pods.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.names import DEFAULT_DRIVER_NAME
from dra_driver.classes import class_name
from dra_driver.k8s import Kube
from e2e import claims
from e2e.fixtures import Sandbox
from e2e.plugin_pods import status_uuids
from e2e.realnode import pods
from e2e.realnode.conftest import HOST_INTERFACES
from e2e.wait import until
from nvml_sim.control import SimulatedMachine
from sandbox.commands import sandbox_down
from sandbox.faults import sandbox_fault
from sandbox.realnode import cgroups, cleanup
from sandbox.realnode.probe import Seen

DRIVER = DEFAULT_DRIVER_NAME
CONTROL = {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}
LIBS = {"libcuda.so.1", "libnvidia-ml.so.1"}
HEALTHY_FOR_S = 65.0


@pytest.fixture(scope="module")
def ns(real_kube: Kube) -> Iterator[str]:
    name = f"real-{uuid.uuid4().hex[:6]}"
    real_kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    yield name


@pytest.fixture(scope="module")
def node(real_sandbox: Sandbox) -> str:
    return real_sandbox.nodes[0]


def _config(kind: str, sharing: dict[str, object]) -> list[dict[str, object]]:
    params = {"apiVersion": f"{DRIVER}/v1alpha1", "kind": kind, "sharing": sharing}
    return [{"requests": ["gpu"], "opaque": {"driver": DRIVER, "parameters": params}}]


WORKLOADS: dict[str, tuple[str, list[dict[str, object]] | None]] = {
    "whole": (class_name("gpu"), None),
    "mig-1g": (class_name("mig-1g-5gb"), None),
    "mig-2g": (class_name("mig-2g-10gb"), None),
    "mig-3g-mps": (
        class_name("mig-3g-20gb"),
        _config("MigDeviceConfig", {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 50}}),
    ),
    "timeslice": (
        class_name("gpu"),
        _config("GpuConfig", {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Short"}}),
    ),
}


@pytest.fixture(scope="module")
def running(real_sandbox: Sandbox, real_kube: Kube, ns: str, node: str) -> dict[str, tuple[str, Seen, float]]:
    """Every workload's pod, started together: name -> (pod, what it saw, when it was seen running)."""
    created = {}
    for workload, (device_class, config) in WORKLOADS.items():
        template = claims.template(real_kube, ns, device_class, config=config)
        created[workload] = pods.create(real_kube, ns, node, template)
    api = real_sandbox.api_client()
    try:
        return {w: (p, pods.seen(api, real_kube, ns, p), time.monotonic()) for w, p in created.items()}
    finally:
        api.close()


def test_the_node_runs_the_real_kubelet_and_containerd(real_kube: Kube, node: str) -> None:
    (obj,) = real_kube.list("/api/v1/nodes")
    info = obj["status"]["nodeInfo"]
    assert obj["metadata"]["name"] == node
    assert info["kubeletVersion"] == "v1.37.2"
    assert info["containerRuntimeVersion"].startswith("containerd://2.4.")
    assert {"type": "InternalIP", "address": "10.77.0.1"} in obj["status"]["addresses"]


def test_a_1g_5gb_pod_sees_one_mig_device_and_the_driver_libraries(
    running: dict[str, tuple[str, Seen, float]], real_kube: Kube, ns: str
) -> None:
    pod, seen, _ = running["mig-1g"]
    assert len(seen.visible) == 1 and seen.visible[0].startswith("MIG-"), seen
    assert list(seen.visible) == status_uuids(claims.claim_of(real_kube, ns, pod) or {})
    assert len(seen.gpu_nodes) == 1, seen
    assert len(seen.caps) == 2, seen
    assert seen.devices >= CONTROL
    assert seen.libs == LIBS, f"the dynamic linker's path {seen} lacks the driver libraries"
    assert "nvidia-smi" in seen.bins


def test_every_container_sees_exactly_its_own_devices(
    running: dict[str, tuple[str, Seen, float]], real_kube: Kube, ns: str
) -> None:
    uuids: list[str] = []
    caps: list[str] = []
    for workload, (pod, seen, _) in running.items():
        claimed = status_uuids(claims.claim_of(real_kube, ns, pod) or {})
        assert list(seen.visible) == claimed, workload
        assert len(seen.gpu_nodes) == 1, (workload, seen)
        assert seen.libs == LIBS, workload
        uuids += seen.visible
        caps += seen.caps
    assert len(set(uuids)) == len(uuids), "two containers see the same GPU or MIG device"
    assert len(set(caps)) == len(caps), "two containers see the same MIG capability"
    whole_gpu = running["whole"][1].gpu_nodes
    assert all(running[w][1].gpu_nodes != whole_gpu for w in WORKLOADS if w != "whole")
    # a MIG-enabled GPU is handed over whole as its full-size MIG instance: 2 capabilities like any MIG device
    assert all(len(seen.caps) == 2 for _, seen, _ in running.values())
    assert any(m.startswith("CUDA_MPS_PIPE_DIRECTORY=") for m in running["mig-3g-mps"][1].mps)


def test_device_health_stays_healthy_past_the_kubelets_30s_timeout(
    running: dict[str, tuple[str, Seen, float]], real_kube: Kube, ns: str
) -> None:
    start = min(seen_at for _, _, seen_at in running.values())
    while time.monotonic() - start < HEALTHY_FOR_S:
        for workload, (pod, _, _) in running.items():
            health = pods.resource_health(real_kube, ns, pod)
            assert health and set(health) == {"Healthy"}, f"{workload}: {health}"
        time.sleep(5)  # a sampling interval, not a wait: the check is that it *stays* Healthy for 65 s


def test_the_plugin_killed_and_restarted_keeps_pods_running_and_serves_new_claims(
    running: dict[str, tuple[str, Seen, float]], real_sandbox: Sandbox, real_kube: Kube, ns: str, node: str
) -> None:
    old = _plugin_pids(real_sandbox, node)
    assert len(old) == 1
    os.kill(old[0], signal.SIGKILL)
    until(
        lambda: [p for p in _plugin_pids(real_sandbox, node) if p not in old],
        "the node agent to restart the plugin",
        timeout=30,
    )
    template = claims.template(real_kube, ns, class_name("mig-1g-5gb"))
    api = real_sandbox.api_client()
    try:
        seen = pods.seen(api, real_kube, ns, pods.create(real_kube, ns, node, template))
    finally:
        api.close()
    assert len(seen.visible) == 1 and seen.visible[0].startswith("MIG-")
    for workload, (pod, _, _) in running.items():
        status = (real_kube.get(f"/api/v1/namespaces/{ns}/pods/{pod}") or {})["status"]
        assert status["phase"] == "Running", workload
        assert status["containerStatuses"][0]["restartCount"] == 0, workload


def test_xid_79_taints_the_gpu_and_its_pod_reports_unhealthy_until_it_recovers(
    running: dict[str, tuple[str, Seen, float]], real_sandbox: Sandbox, real_kube: Kube, ns: str, node: str
) -> None:
    pod, seen, _ = running["mig-1g"]
    machine = SimulatedMachine(real_sandbox.layout.machine_file(node))
    (device,) = seen.gpu_nodes
    (index,) = [g["index"] for g in machine.state()["gpus"] if f"/dev/nvidia{g['minor']}" == device]
    assert sandbox_fault(node, index, "xid", 79, real_sandbox.workdir) == 0
    started = time.monotonic()
    until(lambda: _gpu_taints(real_kube, node, index), "the GPU's devices tainted", timeout=15)
    assert time.monotonic() - started < 15
    assert {t["effect"] for t in _gpu_taints(real_kube, node, index)} == {"NoSchedule"}
    until(lambda: "Unhealthy" in pods.resource_health(real_kube, ns, pod), "the pod's device Unhealthy", timeout=30)
    assert sandbox_fault(node, index, "none", None, real_sandbox.workdir) == 0
    until(lambda: not _gpu_taints(real_kube, node, index), "the taint gone after recovery", timeout=30)
    until(lambda: set(pods.resource_health(real_kube, ns, pod)) == {"Healthy"}, "Healthy again", timeout=30)


def _gpu_taints(kube: Kube, node: str, index: int) -> list[dict[str, str]]:
    out = []
    for s in kube.list("/apis/resource.k8s.io/v1/resourceslices", fieldSelector=f"spec.nodeName={node}"):
        for d in s["spec"].get("devices") or []:
            if d.get("attributes", {}).get("index", {}).get("int") == index:
                out += d.get("taints") or []
    return out


def test_a_lost_gpu_turns_its_pods_health_unhealthy(
    running: dict[str, tuple[str, Seen, float]], real_sandbox: Sandbox, real_kube: Kube, ns: str, node: str
) -> None:
    pod, seen, _ = running["whole"]
    machine = SimulatedMachine(real_sandbox.layout.machine_file(node))
    (device,) = seen.gpu_nodes  # on a MIG-enabled GPU the whole GPU's UUID is its full-size MIG instance's
    (index,) = [g["index"] for g in machine.state()["gpus"] if f"/dev/nvidia{g['minor']}" == device]
    machine.set_fault(index, "lost")
    until(lambda: "Unhealthy" in pods.resource_health(real_kube, ns, pod), "the pod's device Unhealthy", timeout=90)
    machine.set_fault(index, None)


def _driver_calls(sandbox: Sandbox, node: str) -> list[dict[str, object]]:
    """What the plugin ran of the node's (stand-in) driver tools: nvidia-smi, nvidia-cuda-mps-control."""
    log = sandbox.layout.node(node) / "driver-calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_the_mps_claim_got_one_daemon_with_its_limits(
    running: dict[str, tuple[str, Seen, float]], real_sandbox: Sandbox, node: str
) -> None:
    calls = _driver_calls(real_sandbox, node)
    mig_uuid = running["mig-3g-mps"][1].visible[0]
    daemons = [c for c in calls if c["program"] == "nvidia-cuda-mps-control" and c["argv"] == ["-d"]]
    assert [d["env"]["CUDA_VISIBLE_DEVICES"] for d in daemons] == [mig_uuid], daemons  # type: ignore[index]
    stdin = [line for c in calls if c["program"] == "nvidia-cuda-mps-control" for line in c.get("stdin") or []]  # type: ignore[union-attr]
    assert "set_default_active_thread_percentage 50" in stdin


def test_deleting_the_pods_unprepares_everything(
    running: dict[str, tuple[str, Seen, float]], real_sandbox: Sandbox, real_kube: Kube, ns: str, node: str
) -> None:
    for pod in real_kube.list(f"/api/v1/namespaces/{ns}/pods"):
        real_kube.delete(f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}")
    until(lambda: not real_kube.list(f"/api/v1/namespaces/{ns}/pods"), "the pods gone", timeout=120)
    cdi = real_sandbox.layout.node(node) / "cdi"
    until(lambda: not list(cdi.glob("*.json")), f"no CDI spec left in {cdi}", timeout=30)
    machine = SimulatedMachine(real_sandbox.layout.machine_file(node))
    assert machine.mig_partitions() == []
    stdin = [
        line
        for c in _driver_calls(real_sandbox, node)
        if c["program"] == "nvidia-cuda-mps-control"
        for line in c.get("stdin") or []  # type: ignore[attr-defined]
    ]
    assert "quit" in stdin, "the MPS daemon was not stopped on unprepare"


def test_down_leaves_no_process_mount_cgroup_or_interface(real_sandbox: Sandbox) -> None:
    status = real_sandbox.status
    assert status.kubelet == "real" and status.netns and status.cgroup
    assert sandbox_down(real_sandbox.workdir) == 0
    assert cleanup.namespace_members("net", status.netns) == []
    assert cgroups.leftovers(status.cgroup) == []
    assert cleanup.mounts_under(real_sandbox.workdir) == []
    assert sorted(os.listdir("/sys/class/net")) == HOST_INTERFACES
    workdir = str(real_sandbox.workdir).encode()
    assert not [pid for pid, argv in _cmdlines().items() if any(workdir in arg for arg in argv)]


def _cmdlines() -> dict[int, list[bytes]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                out[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
    return out


def _plugin_pids(sandbox: Sandbox, node: str) -> list[int]:
    """The plugin processes of ``node`` of this sandbox (its driver root is in the sandbox's work directory)."""
    root = str(sandbox.layout.node(node) / "driver-root").encode()
    return [pid for pid, argv in _cmdlines().items() if b"kubelet_plugin" in argv and root in argv]
