"""Reading nvidia-smi's time-slice answer, and the MPS daemon's commands: pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet_plugin.mps import DaemonSpec
from kubelet_plugin.sharing import UNKNOWN, DriverTools, ToolMissing, parse_interval


@pytest.mark.parametrize(
    ("output", "interval"),
    [
        ("GPU GPU-1\n    Timeslice                         : LONG\n", "Long"),
        ("Compute policies for GPU 0\n  Timeslice: Short\n", "Short"),
        ("| 0  | Timeslice  | 2 |\n", "Medium"),
        ("GPU 00000000:07:00.0\n    Timeslice : DEFAULT\n", "Default"),
        ("No compute policies listed\n", UNKNOWN),
        ("", UNKNOWN),
    ],
)
def test_the_interval_is_read_from_the_line_naming_the_timeslice(output: str, interval: str) -> None:
    assert parse_interval(output) == interval


def test_daemon_commands_set_the_thread_percentage_and_each_limit_in_mebibytes() -> None:
    spec = DaemonSpec(Path("/p"), "GPU-1", 50, (("GPU-1", 10 * 1024**3), ("1", 512 * 1024**2)))
    assert spec.commands() == [
        "set_default_active_thread_percentage 50",
        "set_default_device_pinned_mem_limit GPU-1 10240M",
        "set_default_device_pinned_mem_limit 1 512M",
    ]
    assert DaemonSpec(Path("/p"), "GPU-1").commands() == []


def test_a_missing_tool_is_named_with_every_place_it_was_looked_for() -> None:
    tools = DriverTools(Path("/driver-root"), {})
    with pytest.raises(ToolMissing) as caught:
        tools.path("nvidia-smi", "time-slicing")
    message = str(caught.value)
    assert "time-slicing needs nvidia-smi" in message
    assert "/driver-root/usr/bin/nvidia-smi and /driver-root/bin/nvidia-smi not found" in message
