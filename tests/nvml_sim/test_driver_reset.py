"""The stand-in ``nvidia-smi --gpu-reset`` changes the simulated machine as ``SimulatedMachine.reset_gpu`` does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from e2e.wait import until
from nvml_sim import machine
from nvml_sim.build import library_path
from nvml_sim.control import SimulatedMachine
from nvml_sim.driver_install import calls_log, install
from nvml_sim.hardware import MACHINE_PROFILES

PROFILE = "dgx-a100"  # Ampere: a MIG mode change waits for a reset


@pytest.fixture
def smi(tmp_path: Path) -> Path:
    root = install(tmp_path / "driver-root", MACHINE_PROFILES[PROFILE].driver_version, library_path())
    return root / "usr" / "bin" / "nvidia-smi"


def _lived_in(path: Path) -> SimulatedMachine:
    """A DGX A100 with something for a reset to undo on GPUs 0-4: a pending MIG mode, MIG partitions, a compute
    mode, ECC errors (and their events), a lost GPU; GPUs 5-7 as booted."""
    sim = SimulatedMachine.create(path, PROFILE)
    with sim.store.mutate() as st:
        gpus = st["gpus"]
        assert machine.set_mig_mode(gpus[0], 0) != 0  # RESET_REQUIRED: pending off, current on
        gi = machine.create_gpu_instance(gpus[1], 9, None)  # 3g.20gb
        full = max(machine.ci_profiles(gpus[1], gi), key=lambda p: p.slice_count)
        machine.create_compute_instance(st, gpus[1], gi, full.enum, None)
        machine.create_gpu_instance(gpus[1], 19, None)  # 1g.5gb, without a compute instance
        machine.set_mig_mode(gpus[2], 0)
        machine.set_compute_mode(gpus[2], 3)
        machine.inject_ecc_errors(st, gpus[3], uncorrected=True, count=2)
        machine.set_fault(st, gpus[4], "lost")
    return sim


def _run(smi: Path, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRA_SIM_NVML_STATE": str(state)}
    return subprocess.run([str(smi), *args], env=env, capture_output=True, text=True, timeout=30, check=False)


def _bus_id(gpu: dict[str, Any]) -> str:
    return f"00000000:{gpu['pciBus']:02X}:00.0"


def test_the_stand_in_reset_leaves_the_state_the_simulators_own_reset_leaves(smi: Path, tmp_path: Path) -> None:
    by_simulator = _lived_in(tmp_path / "a.json")
    by_standin = SimulatedMachine(tmp_path / "b.json")
    shutil.copyfile(by_simulator.state_path, by_standin.state_path)
    before = by_standin.state()
    gpus = before["gpus"]
    for i in range(5):
        by_simulator.reset_gpu(i)
    # a GPU is named by UUID, index or PCI bus ID, as the real -i takes it (GPU 0 twice: reset once)
    ids = [gpus[0]["uuid"], "1", _bus_id(gpus[2]), gpus[3]["uuid"].lower(), gpus[4]["uuid"], "0"]

    done = _run(smi, by_standin.state_path, "--gpu-reset", "-i", ",".join(ids))

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"GPU {_bus_id(g)} was successfully reset." for g in gpus[:5]] + ["All done."]
    after = by_standin.state()
    assert after == by_simulator.state()
    assert after != before  # the reset did something for the comparison to check
    assert after["gpus"][0]["mig"] == after["gpus"][2]["mig"] == {"current": 0, "pending": 0}
    assert after["gpus"][1]["gpuInstances"] == [] and after["gpus"][2]["computeMode"] == 0
    assert after["gpus"][3]["ecc"]["volatile"] == [0, 0] and after["gpus"][3]["ecc"]["aggregate"] != [0, 0]
    assert after["gpus"][4]["fault"] is None
    assert after["gpus"][5:] == gpus[5:]
    [call] = [json.loads(line) for line in calls_log(smi.parent.parent.parent).read_text().splitlines()]
    assert call["program"] == "nvidia-smi" and call["argv"] == ["--gpu-reset", "-i", ",".join(ids)]


def test_without_an_id_every_gpu_is_reset_as_a_reboot_does(smi: Path, tmp_path: Path) -> None:
    by_simulator = _lived_in(tmp_path / "a.json")
    by_standin = SimulatedMachine(tmp_path / "b.json")
    shutil.copyfile(by_simulator.state_path, by_standin.state_path)
    by_simulator.reboot()
    assert _run(smi, by_standin.state_path, "-r").returncode == 0
    assert by_standin.state() == by_simulator.state()


def test_an_id_the_machine_lacks_resets_nothing(smi: Path, tmp_path: Path) -> None:
    sim = _lived_in(tmp_path / "a.json")
    before = sim.state_path.read_bytes()
    done = _run(smi, sim.state_path, "-r", "-i", f"{sim.state()['gpus'][0]['uuid']},8")
    assert done.returncode == 6 and "No devices were found" in done.stdout and "no GPU 8" in done.stderr
    assert sim.state_path.read_bytes() == before
    bad = _run(smi, sim.state_path, "-r", "-i", "0", "-q")
    assert bad.returncode == 2 and "it takes -i <ids>" in bad.stderr
    gone = _run(smi, tmp_path / "no-machine.json", "-r", "-i", "0")
    assert gone.returncode == 9 and "couldn't communicate with the NVIDIA driver" in gone.stdout


def _waits_for_a_lock(pid: int) -> bool:
    """/proc/locks lists a process blocked in flock as ``N: -> FLOCK ADVISORY WRITE <pid> ...``."""
    return any(
        line.split()[1:2] == ["->"] and str(pid) in line.split()
        for line in Path("/proc/locks").read_text().splitlines()
    )


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs /proc/locks to see the stand-in wait")
def test_the_reset_waits_for_the_state_lock_and_loses_no_concurrent_change(smi: Path, tmp_path: Path) -> None:
    sim = _lived_in(tmp_path / "a.json")
    env = {**os.environ, "DRA_SIM_NVML_STATE": str(sim.state_path)}
    with sim.store.mutate() as st:  # another process's NVML call, holding the lock
        proc = subprocess.Popen([str(smi), "-r", "-i", "1"], env=env, stdout=subprocess.PIPE, text=True)
        until(lambda: _waits_for_a_lock(proc.pid), f"the stand-in nvidia-smi {proc.pid} waiting for the lock")
        machine.set_compute_mode(st["gpus"][6], 2)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    gpus = sim.state()["gpus"]
    assert gpus[6]["computeMode"] == 2  # the change made while it waited is kept
    assert gpus[1]["gpuInstances"] == [] and gpus[0]["mig"] == {"current": 1, "pending": 0}
