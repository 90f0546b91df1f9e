"""``dra-gpu sandbox up|down|status|kubeconfig``: one sandbox per work directory, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dra_driver.classes import device_classes
from dra_driver.k8s import Kube
from e2e.fixtures import Sandbox, running_sandbox
from sandbox import instance, nodestate
from sandbox.commands import sandbox_down, sandbox_up
from sandbox.layout import Layout
from sandbox.report import sandbox_kubeconfig, sandbox_status
from sandbox.status import State, read_status
from tests.sandbox.helpers import eventually, living

pytestmark = pytest.mark.sandbox
R = "/apis/resource.k8s.io/v1"
CLAIM = {
    "metadata": {"name": "one-gpu"},
    "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.dra-driver.dev"}}]}},
}
POD = {
    "metadata": {"name": "uses-one-gpu"},
    "spec": {
        "containers": [{"name": "c", "image": "none", "resources": {"claims": [{"name": "gpu"}]}}],
        "resourceClaims": [{"name": "gpu", "resourceClaimName": "one-gpu"}],
    },
}

OWNER = """
import os, sys, time
from pathlib import Path
from sandbox.commands import sandbox_up
code = sandbox_up("", 0, Path(sys.argv[1]), owner_pid=os.getpid())
print("UP" if code == 0 else "FAILED", flush=True)
time.sleep(300)
"""


def test_up_on_a_running_sandbox_says_so_and_starts_no_second_one(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sandbox_up("", len(sandbox.nodes), sandbox.workdir) == 0
    assert "already running" in capsys.readouterr().out
    assert sandbox_up("", len(sandbox.nodes) + 1, sandbox.workdir) == 2
    assert f"you asked for --nodes {len(sandbox.nodes) + 1}" in capsys.readouterr().err
    again = read_status(sandbox.layout)
    assert again is not None
    assert again.supervisor_pid == sandbox.status.supervisor_pid
    assert again.state is State.READY
    assert again.node_count == len(sandbox.nodes)


def test_a_gpu_sandbox_allocates_with_the_shipped_classes_and_never_reuses_another_profiles_node_state(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path_factory.mktemp("gpu")  # short: plugin sockets live below it (108-byte limit)
    layout = Layout(workdir)
    machine = layout.machine_file("sim-node-0")
    with running_sandbox(workdir, profile="dgx-a100", nodes=1) as sb, sb.api_client() as api:
        kube = Kube(api)
        installed = {c["metadata"]["name"] for c in kube.list(f"{R}/deviceclasses")}
        assert installed == {c["metadata"]["name"] for c in device_classes()}
        kube.create(f"{R}/namespaces/default/resourceclaims", CLAIM)
        kube.create("/api/v1/namespaces/default/pods", POD)
        eventually(
            lambda: (
                (kube.get(f"{R}/namespaces/default/resourceclaims/one-gpu") or {}).get("status", {}).get("allocation")
            ),
            60,
            "the claim on gpu.dra-driver.dev to be allocated",
        )
        assert sandbox_up("dgx-h100", 1, workdir) == 2
        assert (
            "with --profile dgx-a100 --nodes 1 --mode whole --kubelet simulated --driver process; "
            "you asked for --profile dgx-h100" in capsys.readouterr().err
        )
        assert sandbox_down(workdir, keep_state=True) == 0
        assert nodestate.machine_owner(machine) == ("dgx-a100", "sim-node-0")
        assert sandbox_up("dgx-h100", 1, workdir, owner_pid=os.getpid()) == 0
        assert nodestate.machine_owner(machine) == ("dgx-h100", "sim-node-0")
        assert "discarded stale node state" in capsys.readouterr().out
        assert sandbox_down(workdir) == 0
        assert not layout.nodes.exists()


def test_status_and_kubeconfig_describe_the_running_sandbox(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sandbox_status(sandbox.workdir) == 0
    summary = capsys.readouterr().out
    assert "ready" in summary
    assert "sim-node-0, sim-node-1" in summary
    assert "kube-apiserver" in summary
    assert sandbox_kubeconfig(sandbox.workdir) == 0
    assert capsys.readouterr().out.strip() == str(sandbox.kubeconfig)


def test_status_of_an_empty_work_directory_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sandbox_status(tmp_path) == 1
    assert sandbox_kubeconfig(tmp_path) == 1
    assert sandbox_down(tmp_path) == 0
    assert "no sandbox running" in capsys.readouterr().out


def test_down_ends_every_process_and_a_second_down_is_harmless(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_sandbox(tmp_path / "sb", nodes=1) as sb:
        assert living(sb.status) == [
            "supervisor",
            "etcd",
            "kube-apiserver",
            "kube-scheduler",
            "kube-controller-manager",
            "kubelet-sim-node-0",
        ]
        assert sandbox_down(sb.workdir) == 0
        assert living(sb.status) == []
        assert not instance.is_running(sb.layout)
        final = read_status(sb.layout)
        assert final is not None and final.state is State.STOPPED
        assert sandbox_status(sb.workdir) == 1
        capsys.readouterr()
        assert sandbox_down(sb.workdir) == 0
        assert "no sandbox running" in capsys.readouterr().out


def test_killing_the_supervisor_takes_the_control_plane_with_it(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sb", nodes=0) as sb:
        os.kill(sb.status.supervisor_pid, signal.SIGKILL)
        eventually(lambda: not living(sb.status), 10, lambda: f"no process left (still alive: {living(sb.status)})")
        assert not instance.is_running(sb.layout)


def test_sandbox_started_for_an_owner_stops_when_the_owner_is_killed(tmp_path: Path) -> None:
    workdir = tmp_path / "sb"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(workdir)], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        verdict = ""
        for line in owner.stdout:  # up's progress, then the verdict
            if line.strip() in ("UP", "FAILED"):
                verdict = line.strip()
                break
        assert verdict == "UP", f"sandbox did not start; see {workdir / 'logs'}"
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout:
            owner.stdout.close()
    status = read_status(Layout(workdir))
    assert status is not None
    eventually(lambda: not living(status), 15, lambda: f"no process left (still alive: {living(status)})")
    final = read_status(Layout(workdir))
    assert final is not None and final.state is State.STOPPED
