"""``dra-gpu sandbox fault``: which simulated machine it changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from nvml_sim.control import SimulatedMachine
from sandbox.faults import sandbox_fault
from sandbox.layout import Layout


def test_a_fault_reaches_the_host_process_plugins_machine(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    own = SimulatedMachine.create(layout.machine_file("n1"), "single-a100", "n1")
    assert sandbox_fault("n1", 0, "xid", 79, workdir=tmp_path) == 0
    assert [e.data for e in own.events()] == [79]


def test_with_the_chart_plugin_the_fault_reaches_its_machine_not_the_device_node_numbering_one(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    numbering = SimulatedMachine.create(layout.machine_file("n1"), "single-a100", "n1")
    layout.chart_machine_file("n1").parent.mkdir(parents=True)
    chart = SimulatedMachine.create(layout.chart_machine_file("n1"), "single-a100", "n1")
    assert sandbox_fault("n1", 0, "xid", 79, workdir=tmp_path) == 0
    assert [e.data for e in chart.events()] == [79]
    assert numbering.events() == []


def test_a_node_without_gpus_is_named_with_the_nodes_that_have_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = Layout(tmp_path)
    layout.chart_machine_file("n2").parent.mkdir(parents=True)
    SimulatedMachine.create(layout.chart_machine_file("n2"), "single-a100", "n2")
    assert sandbox_fault("n1", 0, "lost", workdir=tmp_path) == 2
    assert "nodes with GPUs: n2" in capsys.readouterr().err
