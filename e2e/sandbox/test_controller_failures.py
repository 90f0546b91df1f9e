"""The mode controller and the plugin under failure (issue 15, item 5), on the sandbox's real API server and scheduler.

- the controller SIGKILLed while a change it wrote is not applied yet, and restarted: it sees the change in flight
  and writes no second one; the GPU ends in the mode asked for and the pods run;
- the plugin SIGKILLed in the middle of a change (MIG mode switched on, the GPU reset still running) and restarted:
  its status converges to the spec, the slices publish the new mode, no MIG instance is left half made;
- the API server frozen (SIGSTOP: connections hang) while a change is under way, long enough for the controller to
  lose its Lease: both recover, converge, and every claim is allocated and its pod runs.

Throughout, every mode seen in a NodeGpuModes spec or status is either the GPU's mode before the change or the one
asked for (``Modes.seen``), and the spec and its change history show exactly one change.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from api.gpumodes import API_VERSION, KIND, PLURAL
from cli.main import main as cli_main
from controller.planner.world import HISTORY_ANNOTATION
from dra_driver.classes import class_name
from dra_driver.k8s import ApiError, Kube, resource_path
from e2e import claims
from e2e.controller_proc import Controllers
from e2e.fixtures import Sandbox
from e2e.plugin_node import PluginNode
from e2e.plugin_pods import delete_all, running
from e2e.wait import until

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed", "gpumodes_crd")]
DEADLINE_S = 60
GRACE_S = 2
LEASE_S = 3  # short, so that a restarted controller, or one cut off by the outage, takes over within seconds


@dataclass
class Controller:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    identity: str

    def metric(self, name: str) -> float | None:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read().decode()
        found = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(f"{name} ")]
        return float(found[0]) if found else None


@pytest.fixture
def controllers(sandbox: Sandbox, tmp_path: Path) -> Iterator[Callable[[str, str, str], Controller]]:
    """``start(label, lease, identity)``: ``python -m controller`` on the nodes labelled ``label=true``."""
    procs = Controllers(sandbox.kubeconfig, tmp_path)

    def start(label: str, lease: str, identity: str) -> Controller:
        proc, port, log = procs.start(
            label, grace_s=GRACE_S, cooldown_s=60, lease=lease, identity=identity, lease_s=LEASE_S
        )
        return Controller(proc, port, log, identity)

    yield start
    procs.close()


@dataclass
class Modes:
    """Reads a node's NodeGpuModes and remembers every GPU mode its spec and status ever named."""

    kube: Kube
    node: str
    seen: set[str] = field(default_factory=set)

    def get(self) -> dict[str, Any] | None:
        obj = self.kube.get(resource_path(API_VERSION, PLURAL, self.node))
        for part in ("spec", "status"):
            self.seen.update(g["mode"] for g in ((obj or {}).get(part) or {}).get("gpus") or [])
        return obj

    def applied(self, uuid: str, mode: str) -> dict[str, Any] | None:
        """The GPU's status entry once the plugin reports ``mode`` applied for the current generation."""
        obj = self.get() or {}
        status = obj.get("status") or {}
        if status.get("observedGeneration") != (obj.get("metadata") or {}).get("generation"):
            return None
        entry = next((g for g in status.get("gpus") or [] if g["uuid"] == uuid), None)
        return entry if entry and (entry["mode"], entry["state"]) == (mode, "Applied") else None


def _history(obj: dict[str, Any]) -> dict[str, float]:
    history: dict[str, float] = json.loads(obj["metadata"]["annotations"][HISTORY_ANNOTATION])
    return history


def _published(kube: Kube, node: str) -> list[str]:
    slices = kube.list("/apis/resource.k8s.io/v1/resourceslices", fieldSelector=f"spec.nodeName={node}")
    return [d["name"] for s in slices for d in s["spec"].get("devices") or []]


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _timeslice_pods(kube: Kube, ns: str, node: PluginNode, n: int = 3) -> list[str]:
    template = claims.template(kube, ns, class_name("timeslice"))
    return [claims.pod(kube, ns, node.name, template) for _ in range(n)]


def _names(kube: Kube, ns: str, pods: list[str]) -> list[str]:
    found = [until(partial(claims.claim_of, kube, ns, p), f"claim of {p}") for p in pods]
    return [str(c["metadata"]["name"]) for c in found]


def _explain(sandbox: Sandbox, policy: Path, ns: str, pod: str) -> dict[str, Any]:
    """``dra-gpu explain pod POD -o json``'s ``modes`` member, against the sandbox."""
    out = io.StringIO()
    argv = ["explain", "pod", pod, "-n", ns, "--kubeconfig", str(sandbox.kubeconfig), "--policy", str(policy)]
    with contextlib.redirect_stdout(out):
        assert cli_main([*argv, "-o", "json"]) == 0
    modes: dict[str, Any] = json.loads(out.getvalue())["modes"]
    return modes


def test_a_controller_killed_mid_change_and_restarted_writes_no_second_change(
    sandbox: Sandbox,
    gpu_node: Callable[..., PluginNode],
    controllers: Callable[[str, str, str], Controller],
    kube: Kube,
    namespace: str,
) -> None:
    label, lease = f"e2e-fail-{uuid.uuid4().hex[:6]}", f"e2e-fail-{uuid.uuid4().hex[:6]}"
    node = gpu_node("single-a100", labels={label: "true"}, mig_enabled=False)
    gpu = node.machine.state()["gpus"][0]["uuid"]
    modes = Modes(kube, node.name)
    assert node.process is not None
    with stopped(node.process.pid):  # the plugin cannot apply anything: the change stays in flight
        pods = _timeslice_pods(kube, namespace, node)
        # all three pods past the pending grace before ctl-1 looks, so that it decides for all of them at once
        # (creation timestamps have whole seconds: pods made across a second boundary would otherwise mature apart)
        until(partial(_past_grace, kube, namespace, pods), "the pods past the controller's pending grace")
        first = controllers(label, lease, "ctl-1")
        written = until(modes.get, f"NodeGpuModes written (log: {first.log})", timeout=DEADLINE_S)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        second = controllers(label, lease, "ctl-2")
        names = _names(kube, namespace, pods)
        for name in names:  # the new leader has decided, and saw the change in flight
            until(
                partial(_waiting_by, kube, namespace, name, "ctl-2"),
                f"ctl-2 telling {name} it waits for the change (log: {second.log})",
                timeout=DEADLINE_S,
            )
        assert modes.get() == written  # untouched while it was in flight
        report = _explain(sandbox, second.log.with_suffix(".policy.yaml"), namespace, pods[0])
        assert [(r["node"], r["uuid"], r["desired"], r["state"]) for r in report["running"]] == [
            (node.name, gpu, "timeslice:4", "NotReported")
        ]
        assert [p["verdict"] for p in report["plan"]] == ["waiting"]
    until(lambda: modes.applied(gpu, "timeslice:4"), f"timeslice:4 applied (plugin log: {node.logs[-1]})")
    running(kube, namespace, pods, node)
    final = modes.get() or {}
    assert final["spec"]["gpus"] == [{"uuid": gpu, "mode": "timeslice:4"}]
    assert _history(final) == _history(written)  # one change, made once
    assert second.metric('dra_gpu_controller_changes_applied_total{mode="timeslice"}') in (None, 0.0)
    assert modes.seen <= {"whole", "timeslice:4"}, modes.seen
    delete_all(kube, namespace, pods)


def _past_grace(kube: Kube, ns: str, pods: list[str]) -> bool:
    created = [(kube.get(f"/api/v1/namespaces/{ns}/pods/{p}") or {})["metadata"]["creationTimestamp"] for p in pods]
    newest = max(datetime.fromisoformat(c.replace("Z", "+00:00")).timestamp() for c in created)
    return time.time() - newest > GRACE_S + 1  # + 1: the timestamp's whole seconds


def _waiting_by(kube: Kube, ns: str, claim: str, identity: str) -> bool:
    events = kube.list(f"/apis/events.k8s.io/v1/namespaces/{ns}/events")
    return any(
        (e.get("regarding") or {}).get("name") == claim
        and e.get("reportingInstance") == identity
        and e.get("reason") == "WaitingForGpuMode"
        for e in events
    )


def _gate_resets(node: PluginNode) -> Path:
    """The driver root's nvidia-smi made to hang in ``--gpu-reset`` (a reset that takes long); the real one comes
    back with the plugin's next start. Returns the file the hung reset writes its process id into."""
    smi = node.root / "driver-root" / "usr" / "bin" / "nvidia-smi"
    real = smi.with_name("nvidia-smi.real")
    real.write_bytes(smi.read_bytes())
    real.chmod(0o755)
    pid = node.root / "reset.pid"
    gate = (
        "#!/bin/sh\n"
        f'case " $* " in *" --gpu-reset "*) echo $$ > {pid}; while :; do sleep 1; done;; esac\n'
        f'exec {real} "$@"\n'
    )
    tmp = smi.with_name("nvidia-smi.gate")
    tmp.write_text(gate)
    tmp.chmod(0o755)
    os.replace(tmp, smi)
    return pid


def _read(path: Path) -> str | None:
    return (path.read_text().strip() or None) if path.exists() else None


def test_a_plugin_killed_mid_change_converges_after_restart_with_no_half_made_partition(
    gpu_node: Callable[..., PluginNode], kube: Kube, namespace: str
) -> None:
    node = gpu_node("single-a100", mig_enabled=False)
    gpu = node.machine.state()["gpus"][0]["uuid"]
    modes = Modes(kube, node.name)
    pid_file = _gate_resets(node)
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": node.name}}
    kube.create(resource_path(API_VERSION, PLURAL), {**body, "spec": {"gpus": [{"uuid": gpu, "mode": "mig"}]}})
    hung = until(partial(_read, pid_file), "the GPU reset under way", timeout=30)
    assert node.machine.state()["gpus"][0]["mig"]["pending"] == 1  # MIG mode set, waiting for the reset
    node.kill()
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(hung), signal.SIGKILL)  # the hung reset the killed plugin left behind
    node.start(kube)  # with the real nvidia-smi again
    until(lambda: modes.applied(gpu, "mig"), f"mig applied after the restart (log: {node.logs[-1]})", timeout=30)
    assert node.machine.state()["gpus"][0]["mig"]["current"] == 1
    assert node.machine.mig_partitions() == []  # nothing half made: instances are made per claim
    mig_devices = until(
        lambda: [d for d in _published(kube, node.name) if d.startswith("gpu-0-mig-")], "MIG devices published"
    )
    assert "gpu-0-mig-1g-5gb-0" in mig_devices
    pod = claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("mig-1g-5gb")))
    running(kube, namespace, [pod], node)
    (device,) = claims.allocated_devices(kube, namespace, pod) or []
    assert device.startswith("gpu-0-mig-1g-5gb-")
    assert len(node.machine.mig_partitions()) == 1  # the claim's own
    assert modes.seen <= {"whole", "mig"}, modes.seen
    delete_all(kube, namespace, [pod])


def _apiserver_pid(sandbox: Sandbox) -> int:
    return next(p.pid for p in sandbox.status.processes if p.name == "kube-apiserver")


def _answers(kube: Kube) -> bool:
    try:
        kube.get("/api/v1/namespaces/default")
    except ApiError:
        return False
    return True


def test_an_api_server_outage_mid_change_breaks_no_claim_and_both_converge(
    sandbox: Sandbox,
    gpu_node: Callable[..., PluginNode],
    controllers: Callable[[str, str, str], Controller],
    kube: Kube,
    namespace: str,
) -> None:
    label, lease = f"e2e-fail-{uuid.uuid4().hex[:6]}", f"e2e-fail-{uuid.uuid4().hex[:6]}"
    node = gpu_node("single-a100", labels={label: "true"}, mig_enabled=False)
    gpu = node.machine.state()["gpus"][0]["uuid"]
    modes = Modes(kube, node.name)
    ctl = controllers(label, lease, "ctl-outage")
    pods = _timeslice_pods(kube, namespace, node)
    written = until(modes.get, f"NodeGpuModes written (log: {ctl.log})", timeout=DEADLINE_S)
    began = time.monotonic()
    with stopped(_apiserver_pid(sandbox)):  # until the controller has stopped acting: its Lease ran out unrenewed
        until(
            lambda: "ran out unrenewed" in ctl.log.read_text(),
            f"the controller stepping down within its lease (log: {ctl.log})",
            timeout=LEASE_S + 2,  # though its renewal hangs on the frozen server
        )
    resumed = time.monotonic()
    until(lambda: _answers(kube), "the API server answering again", timeout=30)
    until(
        lambda: ctl.log.read_text().count("holding the lease") == 2 and ctl.metric("dra_gpu_controller_leader") == 1.0,
        f"the controller leading again (log: {ctl.log})",
        timeout=30,
    )
    leading = time.monotonic()
    until(lambda: modes.applied(gpu, "timeslice:4"), f"timeslice:4 applied (plugin log: {node.logs[-1]})")
    applied = time.monotonic()
    running(kube, namespace, pods, node)
    print(
        f"\nAPI server frozen {resumed - began:.1f}s; after it: leading again {leading - resumed:.1f}s, "
        f"change applied {applied - resumed:.1f}s, pods running {time.monotonic() - resumed:.1f}s"
    )
    devices = [claims.allocated_devices(kube, namespace, p) or [] for p in pods]
    assert all(len(d) == 1 and d[0].startswith("gpu-0-ts-") for d in devices), devices
    assert len({d[0] for d in devices}) == len(pods)  # three replicas, one each
    final = modes.get() or {}
    assert final["spec"]["gpus"] == [{"uuid": gpu, "mode": "timeslice:4"}]
    assert _history(final) == _history(written)
    assert ctl.metric('dra_gpu_controller_changes_applied_total{mode="timeslice"}') == 1.0
    assert modes.seen <= {"whole", "timeslice:4"}, modes.seen
    assert node.alive()
    delete_all(kube, namespace, pods)
