"""``dra-gpu sandbox up|down|status|kubeconfig``: one sandbox per work directory, nothing left behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from dra_driver.sandbox import instance
from dra_driver.sandbox.commands import sandbox_down, sandbox_kubeconfig, sandbox_status, sandbox_up
from dra_driver.sandbox.pytest_fixtures import Sandbox, running_sandbox
from dra_driver.sandbox.status import State, read_status
from tests.sandbox.helpers import eventually, living

pytestmark = pytest.mark.sandbox


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
