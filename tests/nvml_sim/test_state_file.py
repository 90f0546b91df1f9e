"""The simulated machine's state is shared by processes and survives a process killed mid-operation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pynvml

from nvml_sim.control import SimulatedMachine
from nvml_sim.store import WRITE_DELAY_ENV
from tests.conftest import MachineFactory
from tests.nvml_sim.helpers import create_full_ci, create_gi

CREATE_IN_CHILD = """
import ctypes, pynvml
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
p = pynvml.c_nvmlGpuInstancePlacement_t(); p.start, p.size = 4, 4
gi = pynvml.nvmlDeviceCreateGpuInstanceWithPlacement(h, 9, ctypes.byref(p))
print(pynvml.nvmlGpuInstanceGetInfo(gi).id, flush=True)
"""


def _run_child(sim: SimulatedMachine, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, **sim.environ(), **(extra_env or {})}
    return subprocess.Popen([sys.executable, "-c", CREATE_IN_CHILD], env=env, stdout=subprocess.PIPE, text=True)


def test_instances_created_by_another_process_are_visible(machine: MachineFactory) -> None:
    sim = machine("single-a100")
    child = _run_child(sim)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert out.strip() == "1"
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlGpuInstanceGetInfo(pynvml.nvmlDeviceGetGpuInstanceById(h, 1)).placement.start == 4


def test_process_killed_mid_create_leaves_the_state_consistent(machine: MachineFactory, tmp_path: Path) -> None:
    sim = machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    ci = create_full_ci(create_gi(h, 19, 0, 1))  # existing partition the crash must not damage
    before = sim.state_path.read_bytes()
    child = _run_child(sim, {WRITE_DELAY_ENV: "30"})
    deadline = time.monotonic() + 60
    tmp_files: list[Path] = []
    while not tmp_files and time.monotonic() < deadline:  # wait until it is half-way through the write
        tmp_files = list(sim.state_path.parent.glob(sim.state_path.name + ".tmp.*"))
        time.sleep(0.02)
    assert tmp_files, "child never started writing"
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL

    assert sim.state_path.read_bytes() == before  # old state intact, parses, nothing half-made
    state = json.loads(sim.state_path.read_text())
    assert [gi["id"] for gi in state["gpus"][0]["gpuInstances"]] == [7]
    assert sim.mig_partitions() == [(0, 7, 0)]
    # The lock died with the process: the same operation now succeeds, and the stale temp file is gone.
    gi = create_gi(h, 9, 4, 4)
    assert pynvml.nvmlGpuInstanceGetInfo(gi).id == 1
    assert not list(sim.state_path.parent.glob(sim.state_path.name + ".tmp.*"))
    pynvml.nvmlComputeInstanceDestroy(ci)
