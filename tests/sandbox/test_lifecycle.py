"""``dra-gpu sandbox up|down|status|kubeconfig``: one sandbox per work directory, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.fixtures import Sandbox, running_sandbox
from sandbox import instance
from sandbox.commands import sandbox_down, sandbox_kubeconfig, sandbox_status, sandbox_up
from sandbox.layout import Layout
from sandbox.status import State, read_status
from tests.sandbox.helpers import eventually, living

pytestmark = pytest.mark.sandbox

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
    assert sandbox_up("", 1, sandbox.workdir) == 0
    assert "already running" in capsys.readouterr().out
    again = read_status(sandbox.layout)
    assert again is not None
    assert again.supervisor_pid == sandbox.status.supervisor_pid
    assert again.state is State.READY


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
