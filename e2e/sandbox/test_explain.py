"""``dra-gpu explain`` against the sandbox: the reason it gives is the one that keeps the pod pending.

Each test publishes a simulated machine's slices for a fresh node (no plugin: the scheduler's decision is
all that matters), lets the real kube-scheduler allocate the claims that come first, and checks that
explain names the selector, counter set, constraint or taint that blocks the last one, while the
scheduler keeps that pod Unschedulable. The last test applies the example of docs/explain.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.partitioning import GpuMode, Mig, Whole
from cli import explain_cmd
from dra_driver.inventory import Inventory
from dra_driver.k8s import Kube
from e2e import claims as pods_and_claims
from e2e.controller_proc import Controllers
from e2e.differential import machines
from e2e.fixtures import Sandbox
from e2e.wait import until
from sandbox.nodes import register_node

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed")]
R = "/apis/resource.k8s.io/v1"
D = machines.DRIVER
DOC = Path(__file__).resolve().parents[2] / "docs" / "explain.md"
Obj = dict[str, Any]
NodeFactory = Callable[..., str]


@pytest.fixture
def gpu_node(sandbox: Sandbox, kube: Kube, inventory: Callable[[str], Inventory]) -> Iterator[NodeFactory]:
    """``gpu_node("single-a100", Mig(), taints=...)``: a simulated node with the machine's slices published."""
    stack = contextlib.ExitStack()

    def make(profile: str, mode: GpuMode, taints: tuple[tuple[str, Obj], ...] = ()) -> str:
        name = f"explain-{uuid.uuid4().hex[:6]}"
        api = sandbox.api_client()
        stack.callback(api.close)
        node = register_node(api, name)
        stack.callback(lambda: kube.delete(f"/api/v1/nodes/{name}"))
        stack.callback(node.stop)
        inv = inventory(profile)
        m = machines.Machine(profile, "-", tuple(mode for _ in inv.gpus), taints=taints)
        uid = (kube.get(f"/api/v1/nodes/{name}") or {})["metadata"]["uid"]
        owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}
        for obj in machines.slices(m, {profile: inv}, name, owner):
            kube.create(f"{R}/resourceslices", obj)
        return name

    with stack:
        yield make


def create_claim(kube: Kube, ns: str, name: str, *requests: Obj, constraints: list[Obj] | None = None) -> None:
    devices: Obj = {"requests": list(requests)}
    if constraints:
        devices["constraints"] = constraints
    kube.create(f"{R}/namespaces/{ns}/resourceclaims", {"metadata": {"name": name}, "spec": {"devices": devices}})


def request(name: str, device_class: str, count: int = 1, selectors: list[str] | None = None) -> Obj:
    exactly: Obj = {"deviceClassName": f"{device_class}.dra-driver.dev", "count": count}
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": s}} for s in selectors]
    return {"name": name, "exactly": exactly}


def create_pod(kube: Kube, ns: str, node: str, name: str, claim: str | None = None) -> None:
    kube.create(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": node},
                "terminationGracePeriodSeconds": 0,
                "containers": [
                    {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"claims": [{"name": "c"}]}}
                ],
                "resourceClaims": [{"name": "c", "resourceClaimName": claim or name}],
            },
        },
    )


def allocated(kube: Kube, ns: str, *names: str) -> None:
    def done() -> bool:
        return all(
            ((kube.get(f"{R}/namespaces/{ns}/resourceclaims/{n}") or {}).get("status") or {}).get("allocation")
            for n in names
        )

    until(done, f"claims {', '.join(names)} allocated")


def explain(sandbox: Sandbox, kind: str, name: str, ns: str, output: str = "json", *extra: str) -> str:
    """Run ``dra-gpu explain`` through its sub-command (the same path as ``dra-gpu`` once it is registered)."""
    parser = argparse.ArgumentParser(prog="dra-gpu")
    explain_cmd.register(parser.add_subparsers(dest="command", required=True))
    argv = ["explain", kind, name, "-n", ns, "--kubeconfig", str(sandbox.kubeconfig), "-o", output, *extra]
    args = parser.parse_args(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(args) == 0
    return out.getvalue()


def only_node(sandbox: Sandbox, kube: Kube, ns: str, pod: str, node: str) -> dict[str, Any]:
    """Explain the pod; assert the scheduler agrees it is unschedulable; the report of its node."""
    until(lambda: pods_and_claims.is_unschedulable(kube, ns, pod), f"{pod} unschedulable")
    report = json.loads(explain(sandbox, "pod", pod, ns))
    (found,) = [n for n in report["nodes"] if n["node"] == node]
    assert found["verdict"] == "unschedulable"
    return dict(found)


def test_a_selector_that_matches_nothing_is_named(
    sandbox: Sandbox, kube: Kube, namespace: str, gpu_node: NodeFactory
) -> None:
    node = gpu_node("single-a100", Whole())
    h100 = f'device.attributes["{D}"].productName == "NVIDIA H100 80GB HBM3"'
    create_claim(kube, namespace, "h100", request("gpu", "gpu", 1, [h100]))
    create_pod(kube, namespace, node, "h100")
    report = only_node(sandbox, kube, namespace, "h100", node)
    assert "request gpu: the class and request selectors match none of 1 devices" in report["reasons"]
    assert f"request gpu: selector {h100} matches none of 1 devices" in report["reasons"]
    assert report["fits"] == [f"gpu: 0 of 1 devices found on {node}"]


def placements_taken(kube: Kube, ns: str, gpu_node: NodeFactory) -> str:
    """An A100 in MIG mode whose 4g.20gb and 3g.20gb devices are allocated, and pod ``two`` asking for a
    2g.10gb device that no placement is left for; the node's name."""
    node = gpu_node("single-a100", Mig())
    for name, profile in (("four", "mig-4g-20gb"), ("three", "mig-3g-20gb")):
        create_claim(kube, ns, name, request("mig", profile))
        create_pod(kube, ns, node, name)
    allocated(kube, ns, "four", "three")
    create_claim(kube, ns, "two", request("mig", "mig-2g-10gb"))
    create_pod(kube, ns, node, "two")
    return node


def test_exhausted_mig_placements_list_no_free_placement_and_the_devices_in_the_way(
    sandbox: Sandbox, kube: Kube, namespace: str, gpu_node: NodeFactory
) -> None:
    node = placements_taken(kube, namespace, gpu_node)
    report = only_node(sandbox, kube, namespace, "two", node)
    assert "2g.10gb placements free: none" in report["fits"]
    (request_facts,) = report["requests"]
    assert request_facts["free_placements"] == {"2g.10gb": {}}
    assert request_facts["blocked"] == {"counters": 3} and request_facts["usable"] == 0
    used_by = [r for r in report["reasons"] if r.startswith("counter set gpu-0 is used by MIG device(s)")]
    assert used_by and f"gpu-0-mig-4g-20gb-0 ({namespace}/four)" in used_by[0]
    assert f"gpu-0-mig-3g-20gb-4 ({namespace}/three)" in used_by[0]


def test_a_whole_gpu_is_reported_blocked_by_the_mig_device_that_uses_its_counters(
    sandbox: Sandbox, kube: Kube, namespace: str, gpu_node: NodeFactory
) -> None:
    node = gpu_node("single-a100", Mig())
    create_claim(kube, namespace, "small", request("mig", "mig-1g-5gb"))
    create_pod(kube, namespace, node, "small")
    allocated(kube, namespace, "small")
    create_claim(kube, namespace, "whole", request("gpu", "gpu"))
    create_pod(kube, namespace, node, "whole")
    report = only_node(sandbox, kube, namespace, "whole", node)
    assert "request gpu: 1 device(s) needed, 0 of 1 matching device(s) can be allocated" in report["reasons"]
    short = next(r for r in report["reasons"] if r.startswith("request gpu: counter set gpu-0 in pool"))
    assert "memory-slice-6" in short  # the slice the 1g.5gb device (placed from the top) occupies
    small = f"counter set gpu-0 is used by MIG device(s) gpu-0-mig-1g-5gb-6 ({namespace}/small)"
    assert small in report["reasons"]


def test_a_constraint_no_device_combination_meets_is_named(
    sandbox: Sandbox, kube: Kube, namespace: str, gpu_node: NodeFactory
) -> None:
    node = gpu_node("a100-80gb-a30", Whole())
    constraint = {"matchAttribute": f"{D}/productName"}
    create_claim(kube, namespace, "three", request("gpu", "gpu", 3), constraints=[constraint])
    create_pod(kube, namespace, node, "three")
    report = only_node(sandbox, kube, namespace, "three", node)
    want = f"claim {namespace}/three: constraint #0 (matchAttribute {D}/productName on all requests)"
    assert report["reasons"] == [f"{want} cannot be satisfied by the available devices"]
    assert report["fits"] == [f"gpu: 3 of 3 devices found on {node}"]


def test_an_untolerated_taint_is_named_with_what_to_tolerate(
    sandbox: Sandbox, kube: Kube, namespace: str, gpu_node: NodeFactory
) -> None:
    taint = {"key": f"{D}/maintenance", "value": "true", "effect": "NoSchedule"}
    node = gpu_node("single-a100", Whole(), taints=(("gpu-0", taint),))
    create_claim(kube, namespace, "gpu", request("gpu", "gpu"))
    create_pod(kube, namespace, node, "gpu")
    report = only_node(sandbox, kube, namespace, "gpu", node)
    assert (
        f"request gpu: 1 matching device(s) have taints it does not tolerate ({D}/maintenance=true:NoSchedule)"
        in report["reasons"]
    )
    assert (
        f"request gpu: add a toleration for {D}/maintenance=true:NoSchedule to use the tainted devices"
        in (report["reasons"])
    )


@pytest.mark.usefixtures("gpumodes_crd")
def test_the_mode_controller_answers_what_the_cli_answers(
    sandbox: Sandbox, kube: Kube, namespace: str, gpu_node: NodeFactory, tmp_path: Path
) -> None:
    node = placements_taken(kube, namespace, gpu_node)
    until(lambda: pods_and_claims.is_unschedulable(kube, namespace, "two"), "two unschedulable")
    controllers = Controllers(sandbox.kubeconfig, tmp_path)
    try:
        proc, _, log = controllers.start(f"e2e-explain-{uuid.uuid4().hex[:6]}", grace_s=0)
        url = f"http://127.0.0.1:{controllers.explain_ports[proc.pid]}"
        policy = ["--policy", str(log.with_suffix(".policy.yaml"))]

        def same() -> Obj | None:  # the controller's cache may be an event behind the API server: ask until equal
            remote = json.loads(explain(sandbox, "pod", "two", namespace, "json", "--controller", url))
            local = json.loads(explain(sandbox, "pod", "two", namespace, "json", *policy))
            return remote if remote == local else None

        report = until(same, f"the controller's answer equal to the CLI's (log: {log})")
        table = explain(sandbox, "pod", "two", namespace, "table", "--controller", url)
    finally:
        controllers.close()
    (mine,) = [n for n in report["nodes"] if n["node"] == node]
    assert mine["verdict"] == "unschedulable" and "2g.10gb placements free: none" in mine["fits"]
    assert f"pod {namespace}/two" in table and "2g.10gb placements free: none" in table
    assert "explained pod" in log.read_text()  # the answer was the controller's


def _normalised(text: str, node: str, ns: str) -> list[str]:
    text = text.replace(node, "sim-node-0").replace(f"{ns}/", "default/")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and "not candidates" not in line]


def _past_grace(sandbox: Sandbox, ns: str) -> str | None:
    text = explain(sandbox, "pod", "two-3g", ns, "table")
    return None if "too-recent" in text else text


def test_the_documented_example_gives_the_documented_output(
    sandbox: Sandbox, kube: Kube, namespace: str, gpu_node: NodeFactory
) -> None:
    doc = DOC.read_text()
    objects = [o for block in re.findall(r"```yaml\n(.*?)```", doc, re.S) for o in yaml.safe_load_all(block)]
    node = gpu_node("single-a100", Mig())
    for obj in objects:
        if obj["kind"] == "Pod":
            obj["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}  # this sandbox has other nodes
            kube.create(f"/api/v1/namespaces/{namespace}/pods", obj)
            if obj["metadata"]["name"] == "small":
                allocated(kube, namespace, "small")
        else:
            kube.create(f"{R}/namespaces/{namespace}/resourceclaims", obj)
    until(lambda: pods_and_claims.is_unschedulable(kube, namespace, "two-3g"), "two-3g unschedulable")
    shown = re.search(r"\$ dra-gpu explain pod two-3g\n(.*?)```", doc, re.S)
    assert shown is not None
    got = until(  # the mode controller's part says "too-recent" while the pod is younger than its grace period
        partial(_past_grace, sandbox, namespace), "two-3g past the mode controller's grace period"
    )
    assert _normalised(got, node, namespace) == _normalised(shown.group(1), "sim-node-0", "default")
