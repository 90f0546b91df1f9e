"""``dra-gpu demo``: the main job, end to end on a laptop.

Starts the sandbox (real control plane, one simulated DGX A100 node in MIG mode with the driver's
kubelet plugin; ``up`` installs the DeviceClasses), applies ``deploy/examples/mig-and-whole-gpu.yaml``,
waits until the real scheduler has allocated and the plugin has prepared every claim, shows what
happened on the (simulated) hardware, deletes the pods, shows that everything was undone, and stops
the sandbox (``--keep`` leaves it running for ``kubectl``).

The node is a real one (the real kubelet and containerd, sandbox/realnode) where the host allows it: then
each pod runs the sandbox's busybox image with a probe instead of its own image, and the demo shows what
each container saw (its devices, MIG capabilities, driver libraries). Elsewhere the simulated kubelet
prepares the claims and nothing runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import config as kube_config
from kubernetes.client import CoreV1Api

from dra_driver.k8s import Kube, Obj
from nvml_sim.control import SimulatedMachine
from sandbox import commands
from sandbox.errors import SandboxError
from sandbox.layout import Layout, default_workdir
from sandbox.realnode.probe import parse, probe_container
from sandbox.status import read_status

EXAMPLES = Path(__file__).resolve().parent / "examples"  # deploy/examples, shipped with this package
NODE = "sim-node-0"
R = "/apis/resource.k8s.io/v1"
PATHS = {
    "DeviceClass": f"{R}/deviceclasses",
    "ResourceClaimTemplate": f"{R}/namespaces/{{ns}}/resourceclaimtemplates",
    "ResourceClaim": f"{R}/namespaces/{{ns}}/resourceclaims",
    "Pod": "/api/v1/namespaces/{ns}/pods",
}


def apply(kube: Kube, objects: list[Obj], namespace: str = "default") -> None:
    """Create each object unless it exists (enough for the example manifests)."""
    for obj in objects:
        base = PATHS[obj["kind"]].format(ns=namespace)
        if kube.get(f"{base}/{obj['metadata']['name']}") is None:
            kube.create(base, obj)


def _wait(what: str, check: Any, logs: Path, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise SandboxError(f"the demo timed out after {timeout:.0f} s waiting for {what}; see the logs in {logs}")


def _claim(kube: Kube, pod: Obj) -> Obj:
    name = pod["status"]["resourceClaimStatuses"][0]["resourceClaimName"]
    claim: Obj = kube.get(f"{R}/namespaces/default/resourceclaims/{name}") or {}
    return claim


def show_pods(kube: Kube, pods: list[str]) -> None:
    print(f"{'POD':10} {'PHASE':8} {'DEVICE':24} UUID")
    for name in pods:
        pod = kube.get(f"/api/v1/namespaces/default/pods/{name}") or {}
        claim = _claim(kube, pod)
        results = claim["status"]["allocation"]["devices"]["results"]
        uuids = {d["device"]: d.get("data", {}).get("uuid", "") for d in claim["status"].get("devices") or []}
        for r in results:
            print(f"{name:10} {pod['status']['phase']:8} {r['device']:24} {uuids.get(r['device'], '(pending)')}")


def show_node(root: Path) -> None:
    machine = SimulatedMachine(root / "machine.json")
    parts = machine.mig_partitions()
    print(f"MIG partitions on the simulated GPUs (gpu, GPU instance, compute instance): {parts or 'none'}")
    specs = sorted(p.name for p in (root / "cdi").glob("*.json"))
    print(f"CDI specs in {root / 'cdi'}: {len(specs)}")
    for name in specs[:1]:
        spec = json.loads((root / "cdi" / name).read_text())
        print(f"  e.g. {name}: cdiVersion {spec['cdiVersion']}, env {spec['containerEdits']['env']}")


def _probing(pod: Obj) -> Obj:
    spec = pod["spec"]
    containers = [probe_container(c) for c in spec["containers"]]
    return {**pod, "spec": {**spec, "containers": containers, "terminationGracePeriodSeconds": 1}}


def show_containers(layout: Layout, pods: list[str]) -> None:
    print("what each container saw (NVIDIA_VISIBLE_DEVICES, device nodes, MIG capabilities, driver libraries):")
    api = kube_config.new_client_from_config(config_file=str(layout.kubeconfig))
    try:
        core = CoreV1Api(api)
        for name in pods:
            seen = _wait(
                f"{name}'s report", lambda n=name: parse(core.read_namespaced_pod_log(n, "default")), layout.logs
            )
            print(f"  {name:10} {seen.summary()}")
    finally:
        api.close()


def run(keep: bool = False, workdir: Path | None = None) -> int:
    workdir = (workdir or default_workdir()).resolve()
    layout = Layout(workdir)
    code = commands.sandbox_up("dgx-a100", 1, workdir, mode="mig", kubelet=None)
    if code != 0:
        return code
    status = read_status(layout)
    real = status is not None and status.kubelet == "real"
    try:
        kube = Kube.from_kubeconfig(layout.kubeconfig)
        examples = [d for d in yaml.safe_load_all((EXAMPLES / "mig-and-whole-gpu.yaml").read_text()) if d]
        if real:
            examples = [_probing(d) if d["kind"] == "Pod" else d for d in examples]
        apply(kube, examples)
        pods = [d["metadata"]["name"] for d in examples if d["kind"] == "Pod"]
        print(f"\napplied {len(examples)} objects from {EXAMPLES / 'mig-and-whole-gpu.yaml'}; waiting for the pods")
        start = time.monotonic()
        _wait(
            "pods Running",
            lambda: all(
                (kube.get(f"/api/v1/namespaces/default/pods/{p}") or {}).get("status", {}).get("phase") == "Running"
                for p in pods
            ),
            layout.logs,
        )
        _wait(
            "device status on the claims",
            lambda: all(
                _claim(kube, kube.get(f"/api/v1/namespaces/default/pods/{p}") or {}).get("status", {}).get("devices")
                for p in pods
            ),
            layout.logs,
        )
        print(f"all {len(pods)} pods Running after {time.monotonic() - start:.1f} s\n")
        show_pods(kube, pods)
        if real:
            show_containers(layout, pods)
        show_node(layout.node(NODE))
        for p in pods:
            kube.delete(f"/api/v1/namespaces/default/pods/{p}")
        _wait(
            "pods deleted",
            lambda: all(kube.get(f"/api/v1/namespaces/default/pods/{p}") is None for p in pods),
            layout.logs,
        )
        print("\npods deleted; the plugin undid everything:")
        show_node(layout.node(NODE))
    finally:
        if not keep:
            commands.sandbox_down(workdir)
    return 0
