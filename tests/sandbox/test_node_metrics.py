"""Each sandbox node's plugin gets a metrics port of its own, and ``sandbox status -o json`` says where."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import main as cli_main
from sandbox import instance, mode_controller, node_metrics
from sandbox.agents import plugin_command
from sandbox.layout import Layout
from sandbox.status import State, Status, write_status

NODES = ("sim-node-0", "sim-node-1")


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_every_node_plugin_gets_its_own_loopback_metrics_port_recorded_for_status(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    argvs = [plugin_command(layout, node, "l4", tmp_path / "kubeconfig")[0] for node in NODES]
    ports = [int(_flag(argv, "--metrics-port")) for argv in argvs]
    assert len(set(ports)) == 2 and all(0 < p < 65536 for p in ports)
    assert {_flag(argv, "--metrics-address") for argv in argvs} == {"127.0.0.1"}
    assert node_metrics.urls(layout, [*NODES, "sim-node-9"]) == {
        node: f"http://127.0.0.1:{port}/metrics" for node, port in zip(NODES, ports, strict=True)
    }


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Layout]:
    """A work directory that looks like a ready sandbox: its status file, its lock held, two nodes' records."""
    layout = Layout(tmp_path)
    me = instance.own_record()
    started = "2026-01-01T00:00:00Z"
    write_status(
        layout, Status(State.READY, str(tmp_path), "dgx-a100", 2, me.pid, me.start_ticks, started, nodes=NODES)
    )
    for i, node in enumerate(NODES):
        node_metrics.record(layout, node, "127.0.0.1", 9400 + i)
    fd = instance.try_lock(layout)
    assert fd is not None
    yield layout
    os.close(fd)


def test_status_as_json_is_the_status_document_with_each_nodes_metrics_url(
    running: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["sandbox", "status", "-o", "json", "--workdir", str(running.root)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "SandboxStatus" and doc["state"] == "ready" and doc["nodes"] == list(NODES)
    assert doc["metrics"] == {
        "sim-node-0": "http://127.0.0.1:9400/metrics",
        "sim-node-1": "http://127.0.0.1:9401/metrics",
    }


def test_status_as_text_keeps_its_summary_and_lists_the_metrics_urls(
    running: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["sandbox", "status", "--workdir", str(running.root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"sandbox in {running.root}: ready") and "  nodes          sim-node-0, sim-node-1" in out
    assert "  metrics        sim-node-0  http://127.0.0.1:9400/metrics" in out
    assert "                 sim-node-1  http://127.0.0.1:9401/metrics" in out


def test_status_as_json_without_a_sandbox_prints_nothing_on_stdout_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["sandbox", "status", "-o", "json", "--workdir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "no sandbox running" in err


def test_status_names_the_mode_controllers_explain_url_it_was_started_with(
    running: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = mode_controller.spec(running, running.root / "kubeconfig").argv
    url = f"http://127.0.0.1:{argv[argv.index('--explain-port') + 1]}"
    assert cli_main(["sandbox", "status", "--workdir", str(running.root)]) == 0
    assert f"  explain        dra-gpu explain pod NAME --controller {url}" in capsys.readouterr().out
    assert cli_main(["sandbox", "status", "-o", "json", "--workdir", str(running.root)]) == 0
    assert json.loads(capsys.readouterr().out)["explain"] == url
