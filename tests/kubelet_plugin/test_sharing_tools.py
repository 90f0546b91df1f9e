"""Time-slicing and MPS through the driver root's own tools, on the simulated NVML and a simulated driver root
whose stand-in nvidia-smi and nvidia-cuda-mps-control record every command (the real HardwareOps code path)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from dra_driver.nvml import settings
from e2e.wait import until
from kubelet_plugin.mps_supervisor import MpsReport, MpsSupervisor, reconcile
from kubelet_plugin.repair import repair
from tests.kubelet_plugin.conftest import claim, time_slicing
from tests.kubelet_plugin.tooled import ToolNode, mps_config

EXCLUSIVE, DEFAULT = settings.EXCLUSIVE_PROCESS, settings.DEFAULT


def _kill(pid: int) -> None:
    """SIGKILL a daemon and wait until it is gone (a zombie counts as gone)."""
    os.kill(pid, signal.SIGKILL)
    until(lambda: not _runs(pid), f"daemon {pid} gone", timeout=5, interval=0.01)


def _runs(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_a_time_slice_claim_sets_the_interval_with_the_driver_roots_nvidia_smi_and_unprepare_resets_it(
    tool_node: ToolNode,
) -> None:
    node = tool_node
    uuid = node.inventory.gpus[0].uuid
    ref = node.api.add(claim("u1", ["gpu-0-ts-0"], config=time_slicing("Long")))
    driver = node.driver()
    assert driver.prepare([ref])["u1"].error == ""
    assert node.commands() == [
        f"nvidia-smi compute-policy -i {uuid} -l",
        f"nvidia-smi compute-policy -i {uuid} --set-timeslice 3",
    ]
    assert all(c["argv"] and c["program"] == "nvidia-smi" for c in node.calls())
    assert node.hardware().interval(uuid) == "Long"  # read back from the tool
    node.forget_calls()
    assert driver.unprepare([ref]) == {"u1": ""}
    assert node.commands() == [
        f"nvidia-smi compute-policy -i {uuid} -l",
        f"nvidia-smi compute-policy -i {uuid} --set-timeslice 0",
    ]


def test_without_nvidia_smi_a_time_slice_claim_is_refused_naming_the_file_and_nothing_changes(
    tool_node: ToolNode,
) -> None:
    node = tool_node
    node.remove_tool("nvidia-smi")
    driver = node.driver()
    refs = [
        node.api.add(claim("u1", ["gpu-0-ts-0"], config=time_slicing("Short"))),
        node.api.add(claim("u2", ["gpu-1"])),  # needs no tool
        node.api.add(claim("u3", ["gpu-2-ts-0"])),  # the default interval: nothing to set
    ]
    results = driver.prepare(refs)
    error = results["u1"].error
    assert f"needs nvidia-smi, which the NVIDIA driver under {node.driver_root} does not have" in error
    assert str(node.driver_root / "usr" / "bin" / "nvidia-smi") in error and "device gpu-0-ts-0" in error
    assert results["u2"].error == "" and results["u3"].error == ""
    assert node.records() == {"u2": "PrepareCompleted", "u3": "PrepareCompleted"}
    assert not any("u1" in p.name for p in node.cdi_dir.iterdir())
    assert node.calls() == []  # no tool was run, and none from PATH


def test_an_mps_claim_starts_exactly_one_daemon_with_the_claims_limits(tool_node: ToolNode) -> None:
    node = tool_node
    uuid = node.inventory.gpus[0].uuid
    ref = node.api.add(claim("u1", ["gpu-0"], config=mps_config(threads=50, memory="10Gi")))
    assert node.driver().prepare([ref])["u1"].error == ""
    pipe = node.mps_root / "gpu-0"
    env = {
        "CUDA_VISIBLE_DEVICES": uuid,
        "CUDA_MPS_PIPE_DIRECTORY": str(pipe),
        "CUDA_MPS_LOG_DIRECTORY": str(pipe / "log"),
    }
    assert [(c["argv"], c.get("stdin"), c["env"]) for c in node.calls()] == [
        (["-d"], None, env),
        ([], ["set_default_active_thread_percentage 50"], env),
        ([], [f"set_default_device_pinned_mem_limit {uuid} 10240M"], env),
    ]
    assert list(node.daemons()) == ["gpu-0"]
    assert node.compute_mode(0) == EXCLUSIVE and node.compute_mode(1) == DEFAULT
    (spec,) = node.cdi_dir.glob("*.json")
    device = json.loads(spec.read_text())["devices"][0]["containerEdits"]
    assert {"hostPath": str(pipe), "containerPath": "/tmp/nvidia-mps", "type": "none", "options": ["rbind", "rw"]} in (
        device["mounts"]
    )
    assert "CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps" in device["env"]


def test_unprepare_quits_the_daemon_and_restores_the_compute_mode(tool_node: ToolNode) -> None:
    node = tool_node
    ref = node.api.add(claim("u1", ["gpu-0"], config=mps_config()))
    driver = node.driver()
    driver.prepare([ref])
    (pid,) = node.daemons().values()
    node.forget_calls()
    assert driver.unprepare([ref]) == {"u1": ""}
    assert [c.get("stdin") for c in node.calls()] == [["quit"]]
    assert node.daemons() == {} and not (node.mps_root / "gpu-0").exists()
    assert not _runs(pid)
    assert node.compute_mode(0) == DEFAULT


def test_claims_sharing_a_gpu_share_its_daemon_until_the_last_one_leaves(tool_node: ToolNode) -> None:
    node = tool_node
    refs = [node.api.add(claim(u, ["gpu-0-shared"], config=mps_config(threads=30))) for u in ("u1", "u2")]
    driver = node.driver()
    assert all(r.error == "" for r in driver.prepare(refs).values())
    assert [c["argv"] for c in node.calls()] == [["-d"]]  # one daemon; each claim's limits go to its clients
    (spec,) = [s for s in node.cdi_dir.glob("*.json") if "u2" in s.name]
    assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=30" in json.loads(spec.read_text())["devices"][0]["containerEdits"]["env"]
    driver.unprepare(refs[:1])
    assert list(node.daemons()) == ["gpu-0"] and node.compute_mode(0) == EXCLUSIVE
    driver.unprepare(refs[1:])
    assert node.daemons() == {} and node.compute_mode(0) == DEFAULT


def test_a_mig_device_gets_a_daemon_for_its_mig_uuid_and_keeps_no_compute_mode(
    tool_nodes: Callable[..., ToolNode],
) -> None:
    node = tool_nodes(mig_enabled=True)
    ref = node.api.add(claim("u1", ["gpu-0-mig-1g-5gb-0"], config=mps_config(20, "2Gi", "MigDeviceConfig")))
    driver = node.driver()
    assert driver.prepare([ref])["u1"].error == ""
    (mig,) = [ci["uuid"] for gi in node.machine.state()["gpus"][0]["gpuInstances"] for ci in gi["computeInstances"]]
    start, *settings_calls = node.calls()
    assert start["argv"] == ["-d"] and start["env"]["CUDA_VISIBLE_DEVICES"] == mig
    assert [c["stdin"] for c in settings_calls] == [
        ["set_default_active_thread_percentage 20"],
        [f"set_default_device_pinned_mem_limit {mig} 2048M"],
    ]
    assert list(node.daemons()) == ["gpu-0-mig-1g-5gb-0"] and node.compute_mode(0) == DEFAULT
    driver.unprepare([ref])
    assert node.daemons() == {} and node.machine.mig_partitions() == []


def test_without_the_mps_control_tool_an_mps_claim_is_refused_before_a_partition_is_made(
    tool_nodes: Callable[..., ToolNode],
) -> None:
    node = tool_nodes(mig_enabled=True)
    node.remove_tool("nvidia-cuda-mps-control")
    ref = node.api.add(claim("u1", ["gpu-0-mig-1g-5gb-0"], config=mps_config(kind="MigDeviceConfig")))
    error = node.driver().prepare([ref])["u1"].error
    assert "MPS sharing needs nvidia-cuda-mps-control" in error
    assert str(node.driver_root / "usr" / "bin" / "nvidia-cuda-mps-control") in error
    assert node.machine.mig_partitions() == [] and node.records() == {} and node.calls() == []


def test_a_daemon_that_dies_is_restarted_by_the_supervisor_with_backoff(tool_node: ToolNode) -> None:
    node = tool_node
    ref = node.api.add(claim("u1", ["gpu-0"], config=mps_config(threads=40)))
    driver = node.driver()
    driver.prepare([ref])
    now = [100.0]
    supervisor = MpsSupervisor(driver, first=2.0, cap=8.0, clock=lambda: now[0])
    assert supervisor.check() == []  # running: nothing to do
    (first,) = node.daemons().values()
    _kill(first)
    node.forget_calls()
    assert supervisor.check() == [str(node.mps_root / "gpu-0")]
    (second,) = node.daemons().values()
    assert second != first
    uuid = node.inventory.gpus[0].uuid
    assert [c.get("stdin") for c in node.calls()] == [
        None,
        ["set_default_active_thread_percentage 40"],
        [f"set_default_device_pinned_mem_limit {uuid} 10240M"],
    ]
    _kill(second)
    assert supervisor.check() == []  # within the backoff delay (2 s)
    now[0] += 2.0
    assert supervisor.check() == [str(node.mps_root / "gpu-0")]
    assert len(node.daemons()) == 1


def test_repair_after_a_crash_stops_unowned_daemons_restarts_dead_ones_and_resets_unused_settings(
    tool_node: ToolNode,
) -> None:
    node = tool_node
    ref = node.api.add(claim("u1", ["gpu-0"], config=mps_config()))
    node.driver().prepare([ref])
    (owned,) = node.daemons().values()
    # what a crash can leave: a daemon and compute mode of a claim since forgotten, an interval no claim uses
    orphan = node.api.add(claim("u2", ["gpu-1"], config=mps_config()))
    other = node.driver()
    other.prepare([orphan])
    other.checkpoint.remove("u2")
    gpu2 = node.inventory.gpus[2].uuid
    node.hardware().set_interval(gpu2, "Medium")
    _kill(owned)

    report = repair(node.driver(), [])

    assert (report.mps_started, report.mps_stopped, report.settings_reset) == (1, 1, 2)
    assert list(node.daemons()) == ["gpu-0"] and node.daemons()["gpu-0"] != owned
    assert not (node.mps_root / "gpu-1").exists()
    assert (node.compute_mode(0), node.compute_mode(1)) == (EXCLUSIVE, DEFAULT)
    assert node.hardware().interval(gpu2) == "Default"


def test_repair_reads_the_settings_and_changes_nothing_on_a_clean_node(tool_node: ToolNode) -> None:
    node = tool_node
    report = repair(node.driver(), [])
    assert (report.mps_started, report.mps_stopped, report.settings_reset) == (0, 0, 0)
    assert {" ".join(c["argv"][:1] + c["argv"][3:]) for c in node.calls()} == {"compute-policy -l"}


def test_a_restarted_plugin_adopts_the_daemon_that_outlived_it_by_its_pid_file(tool_node: ToolNode) -> None:
    """Where the daemon outlives the plugin (a plugin process restarted in the same place, as in the sandbox),
    start-up keeps it: no second daemon, no command. In a container it dies with the container (docs)."""
    node = tool_node
    ref = node.api.add(claim("u1", ["gpu-0"], config=mps_config(threads=30)))
    node.driver().prepare([ref])
    (pid,) = node.daemons().values()
    node.forget_calls()

    assert reconcile(node.driver()) == MpsReport(started=0, stopped=0)  # a new plugin instance

    assert node.daemons() == {"gpu-0": pid} and node.calls() == []


def test_unprepare_sets_default_when_the_interval_cannot_be_read(
    tool_node: ToolNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = tool_node
    uuid = node.inventory.gpus[0].uuid
    ref = node.api.add(claim("u1", ["gpu-0-ts-0"], config=time_slicing("Long")))
    driver = node.driver()
    assert driver.prepare([ref])["u1"].error == ""
    monkeypatch.setattr(type(driver.hardware.time_slicer), "interval", lambda self, gpu: "unknown")  # type: ignore[attr-defined]
    node.forget_calls()
    assert driver.unprepare([ref]) == {"u1": ""}
    assert node.commands() == [f"nvidia-smi compute-policy -i {uuid} --set-timeslice 0"]
