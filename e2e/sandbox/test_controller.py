"""The mode controller end to end (docs/controller.md): ``python -m controller`` as a process against the sandbox's
real API server and scheduler, the real kubelet plugin applying what it writes into NodeGpuModes.

Acceptance of issue 15: one node with one idle A100 in whole mode and three pods each asking for a time-slice
replica; within 60 s the GPU is switched, all three run, and an Event on each claim names the change.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from api.gpumodes import API_VERSION, PLURAL
from cli.main import main as cli_main
from controller.leader import LeaderElector
from dra_driver.classes import class_name
from dra_driver.k8s import Kube, resource_path
from e2e import claims
from e2e.controller_proc import Controllers, http_status
from e2e.fixtures import Sandbox
from e2e.plugin_node import PluginNode
from e2e.plugin_pods import delete_all, running
from e2e.wait import until

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed", "gpumodes_crd")]
R = "/apis/resource.k8s.io/v1"
DEADLINE_S = 60


_http = http_status


@pytest.fixture
def controller(sandbox: Sandbox, tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], int, Path]]]:
    """``controller(label, dry_run=False)``: ``python -m controller`` acting only on nodes labelled ``label=true``."""
    procs = Controllers(sandbox.kubeconfig, tmp_path)
    yield lambda label, dry_run=False: procs.start(label, dry_run=dry_run)
    procs.close()


def _events(kube: Kube, ns: str, claim: str) -> list[str]:
    events = kube.list(f"/apis/events.k8s.io/v1/namespaces/{ns}/events")
    return [str(e.get("note")) for e in events if (e.get("regarding") or {}).get("name") == claim]


def _events_saying(kube: Kube, ns: str, claim: str, text: str) -> list[str]:
    return [n for n in _events(kube, ns, claim) if text in n]


def test_three_waiting_replicas_switch_an_idle_whole_gpu_and_run(
    gpu_node: Callable[..., PluginNode],
    controller: Callable[..., tuple[subprocess.Popen[bytes], int, Path]],
    kube: Kube,
    namespace: str,
) -> None:
    label = f"e2e-modes-{uuid.uuid4().hex[:6]}"
    # the profile's MIG mode (on), as an A100 often ships: used whole through its full-size instance; time-slicing
    # needs MIG off, which on Ampere waits for a GPU reset, done by the driver root's (simulated) nvidia-smi
    node = gpu_node("single-a100", labels={label: "true"})
    proc, port, log = controller(label)
    until(lambda: _http(port, "/readyz") == 200, f"controller ready (log: {log})", timeout=DEADLINE_S)
    template = claims.template(kube, namespace, class_name("timeslice"))
    pods = [claims.pod(kube, namespace, node.name, template) for _ in range(3)]
    obj: dict[str, Any] = until(
        lambda: kube.get(resource_path(API_VERSION, PLURAL, node.name)),
        f"NodeGpuModes written (log: {log})",
        timeout=DEADLINE_S,
    )
    uuid0 = node.machine.state()["gpus"][0]["uuid"]
    assert obj["spec"]["gpus"] == [{"uuid": uuid0, "mode": "timeslice:4"}]
    running(kube, namespace, pods, node)  # the plugin applied it, the scheduler allocated the replicas
    assert node.machine.state()["gpus"][0]["mig"] == {"current": 0, "pending": 0}  # MIG off after the reset
    message = f"{node.name} gpu-0: whole → timeslice:4 for 3 pending claims"
    for pod in pods:
        claim = claims.claim_of(kube, namespace, pod)
        assert claim is not None
        name = str(claim["metadata"]["name"])
        assert until(partial(_events_saying, kube, namespace, name, message), f"an Event on {name} naming the change")
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'dra_gpu_controller_changes_applied_total{mode="timeslice"} 1.0' in metrics
    delete_all(kube, namespace, pods)
    proc.terminate()
    assert proc.wait(20) == 0  # SIGTERM: a clean exit


def test_a_gpu_with_a_running_pod_is_not_changed_whatever_the_demand(
    sandbox: Sandbox,
    gpu_node: Callable[..., PluginNode],
    controller: Callable[..., tuple[subprocess.Popen[bytes], int, Path]],
    kube: Kube,
    namespace: str,
) -> None:
    label = f"e2e-modes-{uuid.uuid4().hex[:6]}"
    node = gpu_node("single-a100", labels={label: "true"}, mig_enabled=False)
    busy = claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("gpu")))
    running(kube, namespace, [busy], node)
    _, port, log = controller(label)
    until(lambda: _http(port, "/readyz") == 200, f"controller ready (log: {log})", timeout=DEADLINE_S)
    waiting = claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("timeslice")))
    claim = until(lambda: claims.claim_of(kube, namespace, waiting), "the waiting pod's claim")
    notes = until(lambda: _events(kube, namespace, claim["metadata"]["name"]), f"an Event (log: {log})", timeout=30)
    assert any("gpu-busy" in n for n in notes), notes
    assert kube.get(resource_path(API_VERSION, PLURAL, node.name)) is None  # nothing was asked of the node
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # dra-gpu plan, live, with the same policy: the same answer
        assert cli_main(["plan", "--kubeconfig", str(sandbox.kubeconfig), "--policy", str(log.with_suffix(".policy.yaml")),
                         "-o", "json"]) == 0  # fmt: skip
    plan = json.loads(out.getvalue())
    mine = [u for u in plan["unhelped"] if u["claim"] == f"{namespace}/{claim['metadata']['name']}"]
    assert [u["reason"] for u in mine] == ["gpu-busy"] and plan["changes"] == []
    delete_all(kube, namespace, [busy, waiting])


def test_of_two_electors_one_leads_and_a_release_hands_over(kube: Kube) -> None:
    name = f"e2e-lease-{uuid.uuid4().hex[:6]}"
    a = LeaderElector(kube, "default", name, "a", lease_s=30, renew_s=0.2)
    b = LeaderElector(kube, "default", name, "b", lease_s=30, renew_s=0.2)
    assert a.step() and not b.step() and not b.step()
    assert a.leading.is_set() and not b.leading.is_set()
    a.release()
    assert b.step()  # no wait for the 30 s lease: it was given up
    assert not a.step() and not a.leading.is_set()
    kube.delete(resource_path("coordination.k8s.io/v1", "leases", name, namespace="default"))


def test_a_dry_run_tells_the_claims_what_it_would_do_and_writes_nothing(
    gpu_node: Callable[..., PluginNode],
    controller: Callable[..., tuple[subprocess.Popen[bytes], int, Path]],
    kube: Kube,
    namespace: str,
) -> None:
    label = f"e2e-modes-{uuid.uuid4().hex[:6]}"
    node = gpu_node("single-a100", labels={label: "true"}, mig_enabled=False)
    _, port, log = controller(label, dry_run=True)
    until(lambda: _http(port, "/readyz") == 200, f"controller ready (log: {log})", timeout=DEADLINE_S)
    pods = [claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("timeslice")))]
    claim = until(lambda: claims.claim_of(kube, namespace, pods[0]), "the pod's claim")
    text = f"would change {node.name} gpu-0: whole → timeslice:2 for 1 pending claim"
    name = str(claim["metadata"]["name"])
    assert until(partial(_events_saying, kube, namespace, name, text), f"the dry-run Event (log: {log})", timeout=30)
    assert kube.get(resource_path(API_VERSION, PLURAL, node.name)) is None
    assert claims.allocated_devices(kube, namespace, pods[0]) is None  # still waiting: nothing changed
    delete_all(kube, namespace, pods)
