from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from sandbox import instance
from sandbox.featuregates import FeatureGates
from sandbox.layout import Layout
from sandbox.nodes import NodeSpec, node_manifest, node_status
from sandbox.status import ProcessInfo, State, Status, read_status, write_status


def test_status_survives_a_round_trip_through_its_file(tmp_path: Path) -> None:
    status = Status(
        state=State.READY,
        workdir=str(tmp_path),
        profile="dgx-a100",
        node_count=1,
        supervisor_pid=42,
        supervisor_start_ticks=7,
        started_at="2026-01-01T00:00:00Z",
        ports={"apiserver": 6443},
        nodes=("sim-node-0",),
        processes=(ProcessInfo("etcd", 43, 8, "/x/etcd.log"),),
        feature_gates=FeatureGates(("A",), ("A",), (), ()),
        resource_versions=("v1",),
        kubelet="real",
        driver="helm",
    )
    write_status(Layout(tmp_path), status)
    assert read_status(Layout(tmp_path)) == status


def test_unreadable_status_reads_as_none(tmp_path: Path) -> None:
    Layout(tmp_path).status_file.write_text("{not json")
    assert read_status(Layout(tmp_path)) is None


def test_lock_is_exclusive_until_its_holder_lets_go(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    fd = instance.try_lock(layout)
    assert fd is not None
    assert instance.try_lock(layout) is None
    assert instance.is_running(layout)
    os.close(fd)
    assert not instance.is_running(layout)


def test_a_zombie_or_a_reused_pid_does_not_count_as_alive() -> None:
    me = instance.own_record()
    assert instance.alive(me)
    assert not instance.alive(instance.PidRecord(me.pid, me.start_ticks + 1))
    proc = subprocess.Popen(["true"])
    time.sleep(0.3)  # exited, not yet reaped: a zombie
    assert instance.start_ticks(proc.pid) is None
    proc.wait()


def test_simulated_node_reports_ready_with_its_resources_and_no_taints() -> None:
    spec = NodeSpec("sim-node-0", cpu="8", labels={"gpu": "yes"})
    status = node_status(spec, "t0", "t1")
    ready = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    assert status["allocatable"] == {"cpu": "8", "memory": "64Gi", "pods": "110"}
    manifest = node_manifest(spec)
    assert "taints" not in manifest.get("spec", {})
    assert manifest["metadata"]["labels"]["gpu"] == "yes"
