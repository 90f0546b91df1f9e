"""``up`` tells the truth about what runs, and node state never outlives the sandbox it belongs to.

No control plane here: a "running" sandbox is the held supervisor lock plus its status document, which is all
``up`` consults before deciding; node state is files. The real thing is in test_lifecycle.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nvml_sim.control import SimulatedMachine
from sandbox import instance, nodestate
from sandbox.commands import sandbox_down, sandbox_up
from sandbox.layout import Layout
from sandbox.realnode import launch
from sandbox.status import State, Status, write_status


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "sb")


@pytest.fixture
def held(layout: Layout) -> Iterator[None]:
    """The sandbox lock held, as by a running supervisor."""
    fd = instance.try_lock(layout)
    assert fd is not None
    yield
    os.close(fd)


def running(
    layout: Layout,
    profile: str,
    nodes: int,
    mode: str = "whole",
    state: State = State.READY,
    kubelet: str = "simulated",
    driver: str = "process",
) -> None:
    me = instance.own_record()
    status = Status(
        state=state,
        workdir=str(layout.root),
        profile=profile,
        node_count=nodes,
        mode=mode,
        kubelet=kubelet,
        driver=driver,
        supervisor_pid=me.pid,
        supervisor_start_ticks=me.start_ticks,
        started_at="2026-01-01T00:00:00Z",
        kubeconfig=str(layout.kubeconfig),
    )
    write_status(layout, status)


def node_with_machine(layout: Layout, node: str, profile: str, host: str | None = None) -> Path:
    SimulatedMachine.create(layout.machine_file(node), profile, node if host is None else host)
    (layout.node(node) / "state").mkdir()
    (layout.node(node) / "state" / "checkpoint.json").write_text("{}")
    return layout.node(node)


@pytest.mark.usefixtures("held")
def test_up_with_other_arguments_than_the_running_sandbox_fails_naming_the_difference(
    layout: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    running(layout, "dgx-a100", 1)
    assert sandbox_up("dgx-h100", 1, layout.root) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"a sandbox is running in {layout.root} with --profile dgx-a100 --nodes 1 --mode whole --kubelet simulated "
        "--driver process; you asked for --profile dgx-h100: run `dra-gpu sandbox down` first\n"
    )


@pytest.mark.usefixtures("held")
@pytest.mark.parametrize(("running_driver", "asked"), [("process", "helm"), ("helm", "process")])
def test_up_with_another_driver_than_the_running_sandbox_is_refused(
    layout: Layout, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, running_driver: str, asked: str
) -> None:
    monkeypatch.setattr(launch, "why_not_real", lambda: None)
    running(layout, "dgx-a100", 1, mode="mig", kubelet="real", driver=running_driver)
    assert sandbox_up("dgx-a100", 1, layout.root, mode="mig", kubelet="real", driver=asked) == 2
    assert capsys.readouterr().err == (
        f"a sandbox is running in {layout.root} with --profile dgx-a100 --nodes 1 --mode mig --kubelet real "
        f"--driver {running_driver}; you asked for --driver {asked}: run `dra-gpu sandbox down` first\n"
    )
    assert sandbox_up("dgx-a100", 1, layout.root, mode="mig", kubelet="real", driver=running_driver) == 0


@pytest.mark.parametrize(
    ("kubelet", "profile", "driver", "message"),
    [
        ("simulated", "dgx-a100", "helm", "--driver helm needs --kubelet real: the chart's DaemonSet runs the plugin"),
        ("real", "", "helm", "--driver helm needs a GPU --profile: the chart runs the plugin on simulated GPUs"),
        ("real", "dgx-a100", "docker", "--driver: 'docker' is not one of process, helm"),
    ],
)
def test_a_driver_the_sandbox_cannot_run_is_refused_before_anything_starts(
    layout: Layout,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kubelet: str,
    profile: str,
    driver: str,
    message: str,
) -> None:
    monkeypatch.setattr(launch, "why_not_real", lambda: None)
    assert sandbox_up(profile, 1, layout.root, kubelet=kubelet, driver=driver) == 2
    assert capsys.readouterr().err.startswith(message)
    assert not layout.root.exists() or not any(layout.root.iterdir())


def test_helm_without_a_host_for_real_nodes_says_why(
    layout: Layout, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launch, "why_not_real", lambda: "real nodes need root")
    assert sandbox_up("dgx-a100", 1, layout.root, kubelet=None, driver="helm") == 2
    assert capsys.readouterr().err == "--kubelet real: real nodes need root\n"


@pytest.mark.usefixtures("held")
@pytest.mark.parametrize(
    ("profile", "nodes", "mode", "asked"),
    [
        ("dgx-a100", 2, None, "--nodes 2"),
        ("dgx-a100", 1, "mig", "--mode mig"),
        ("", 3, "timeslice:4", "--profile none --nodes 3 --mode timeslice:4"),
    ],
)
def test_every_differing_argument_is_named(
    layout: Layout,
    capsys: pytest.CaptureFixture[str],
    profile: str,
    nodes: int,
    mode: str | None,
    asked: str,
) -> None:
    running(layout, "dgx-a100", 1)
    assert sandbox_up(profile, nodes, layout.root, mode=mode) == 2
    assert f"you asked for {asked}: run `dra-gpu sandbox down` first" in capsys.readouterr().err


@pytest.mark.usefixtures("held")
def test_up_with_the_same_arguments_as_the_ready_sandbox_succeeds(
    layout: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    running(layout, "dgx-a100", 2, mode="timeslice:4")
    assert sandbox_up("dgx-a100", 2, layout.root, mode="timeslice:4") == 0
    out = capsys.readouterr().out
    assert "already running" in out and f"export KUBECONFIG={layout.kubeconfig}" in out


@pytest.mark.usefixtures("held")
def test_an_explicit_whole_mode_is_the_default_mode(layout: Layout) -> None:
    running(layout, "dgx-a100", 1)
    assert sandbox_up("dgx-a100", 1, layout.root, mode="whole") == 0


def test_down_removes_node_state(layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
    node_with_machine(layout, "sim-node-0", "dgx-a100")
    layout.partitioning_file.write_text("defaultMode: mig\n")
    assert sandbox_down(layout.root) == 0
    assert not layout.nodes.exists() and not layout.partitioning_file.exists()
    assert f"removed the node state (simulated GPUs, plugin checkpoints, CDI specs) in {layout.nodes}" in (
        capsys.readouterr().out
    )


def test_down_keeps_node_state_when_asked(layout: Layout) -> None:
    root = node_with_machine(layout, "sim-node-0", "dgx-a100")
    assert sandbox_down(layout.root, keep_state=True) == 0
    assert (root / "machine.json").exists() and (root / "state" / "checkpoint.json").exists()


def test_node_state_of_the_same_profile_and_node_is_kept_for_the_next_up(layout: Layout) -> None:
    root = node_with_machine(layout, "sim-node-0", "dgx-a100")
    assert nodestate.keep_only(layout, ("sim-node-0",), "dgx-a100") == []
    assert (root / "state" / "checkpoint.json").exists()


@pytest.mark.parametrize(
    ("profile", "host", "held_what"),
    [
        ("dgx-a100", None, "simulated dgx-a100 machine of sim-node-0"),  # the sandbox runs dgx-h100
        ("dgx-h100", "sim-node-7", "simulated dgx-h100 machine of sim-node-7"),  # copied from another node
    ],
)
def test_node_state_of_another_profile_or_node_is_discarded_with_its_claims(
    layout: Layout, profile: str, host: str | None, held_what: str
) -> None:
    root = node_with_machine(layout, "sim-node-0", profile, host)
    notes = nodestate.keep_only(layout, ("sim-node-0",), "dgx-h100")
    assert notes == [f"discarded stale node state {root} ({held_what}); this sandbox runs profile dgx-h100"]
    assert not root.exists()


def test_nodes_the_sandbox_no_longer_has_and_gpu_less_nodes_keep_no_state(layout: Layout) -> None:
    node_with_machine(layout, "sim-node-0", "dgx-a100")
    node_with_machine(layout, "sim-node-1", "dgx-a100")
    assert len(nodestate.keep_only(layout, ("sim-node-0",), "dgx-a100")) == 1
    assert [p.name for p in layout.nodes.iterdir()] == ["sim-node-0"]
    assert len(nodestate.keep_only(layout, ("sim-node-0",), "")) == 1
    assert list(layout.nodes.iterdir()) == []


def test_a_work_directory_too_long_for_the_plugins_sockets_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / ("w" * 80)
    assert sandbox_up("single-a100", 1, workdir) == 2
    err = capsys.readouterr().err
    assert "--workdir:" in err and "use a shorter work directory" in err
    assert not (workdir / "status.json").exists()
