"""The real-GPU check, run end to end on a simulated machine: the same code path as on a real host."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nvml_sim.build import library_path
from nvml_sim.control import SimulatedMachine
from nvml_sim.driver_install import install
from tools import real_gpu_check_root as ns

REPO = Path(__file__).resolve().parents[2]
WHY_NOT = (
    "needs root (mount namespaces)"
    if os.geteuid() != 0
    else "needs /bin/busybox (busybox-static)"
    if not ns.BUSYBOX.is_file()
    else f"needs {', '.join(c for c in ns.COMMANDS if not shutil.which(c))}"
    if not all(shutil.which(c) for c in ns.COMMANDS)
    else None
)
namespaces = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

CREATE_MIG = """
import ctypes, pynvml
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
p = pynvml.c_nvmlGpuInstancePlacement_t(); p.start, p.size = 4, 1
info = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(h, pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE)
gi = pynvml.nvmlDeviceCreateGpuInstanceWithPlacement(h, info.id, ctypes.byref(p))
ci_info = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, 0, 0)
pynvml.nvmlGpuInstanceCreateComputeInstance(gi, ci_info.id)
pynvml.nvmlShutdown()
"""


class Node:
    """A simulated machine with a driver root and a directory of stand-in device nodes (/dev/null's numbers)."""

    def __init__(self, tmp: Path, profile: str, mig: bool) -> None:
        self.machine = SimulatedMachine.create(tmp / "machine.json", profile, mig_enabled=mig)
        self.root = install(tmp / "driver-root", self.machine.state()["driverVersion"], library_path())
        self.dev = tmp / "dev"
        (self.dev / "nvidia-caps").mkdir(parents=True)
        names = [f"nvidia{g['minor']}" for g in self.machine.state()["gpus"]]
        for name in [*names, "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"]:
            os.mknod(self.dev / name, 0o666 | 0o020000, os.makedev(1, 3))
        self.work = tmp

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.machine.environ()}

    def check(self, *extra: str) -> tuple[int, dict[str, Any]]:
        argv = [sys.executable, "-m", "tools.real_gpu_check", "--json", "--driver-root", str(self.root)]
        argv += ["--dev-root", str(self.dev), "--sysfs-root", str(self.machine.sysfs_root())]
        argv += ["--simulated", str(self.machine.state_path), "--work-dir", str(self.work), *extra]
        done = subprocess.run(argv, cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=120)
        assert done.stderr == "", done.stderr
        return done.returncode, json.loads(done.stdout)


@pytest.fixture
def node(tmp_path: Path) -> Callable[..., Node]:
    def make(profile: str = "dgx-h100", mig: bool = False) -> Node:
        try:
            return Node(tmp_path, profile, mig)
        except PermissionError as exc:
            pytest.skip(f"cannot make device nodes here: {exc}")

    return make


@namespaces
def test_nvidia_smi_with_only_the_spec_applied_lists_exactly_the_allocated_gpu(node: Callable[..., Node]) -> None:
    n = node()
    before = n.machine.state_path.read_bytes()

    code, report = n.check("--gpu", "3")

    gpu3 = n.machine.state()["gpus"][3]["uuid"]
    assert code == 0, report
    assert report["ok"] and report["failed_step"] is None
    assert report["listed"] == report["expected"] == [gpu3]
    assert report["run"]["output"] == [f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {gpu3})"]
    nodes = {b["target"] for b in report["run"]["binds"] if b["kind"] == "cdi-device"}
    assert nodes == {"/dev/nvidia3", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}
    assert report["slices"]["devices"] == 8 and report["allocated"]["device"] == "gpu-3"
    assert n.machine.state_path.read_bytes() == before  # read-only: the machine is exactly as it was


@namespaces
def test_a_mig_device_is_listed_under_its_gpu_and_nothing_else(node: Callable[..., Node]) -> None:
    n = node("dgx-a100", mig=True)
    subprocess.run([sys.executable, "-c", CREATE_MIG], env=n.env(), check=True, timeout=60)
    gpu = n.machine.state()["gpus"][0]
    mig_uuid = gpu["gpuInstances"][0]["computeInstances"][0]["uuid"]
    for minor in range(3, 3 + 135):  # GPU 0's capability minors, in the driver's default layout
        os.mknod(n.dev / "nvidia-caps" / f"nvidia-cap{minor}", 0o666 | 0o020000, os.makedev(1, 3))

    code, report = n.check("--gpu", "0")

    assert code == 0, report
    assert report["allocated"]["uuid"] == mig_uuid and report["allocated"]["device"] == "gpu-0-mig-1g-5gb-4"
    assert report["listed"] == [gpu["uuid"], mig_uuid]
    assert report["run"]["output"][1] == f"  MIG 1g.5gb      Device  0: (UUID: {mig_uuid})"


def test_a_device_node_that_does_not_exist_fails_the_check_naming_it(node: Callable[..., Node]) -> None:
    n = node()
    (n.dev / "nvidia-uvm").unlink()

    code, report = n.check()

    assert code == 1 and report["failed_step"] == "cdi spec"
    assert report["missing"] == [f"{n.dev}/nvidia-uvm (for /dev/nvidia-uvm, cdi-device)"]
    assert report["run"] == {}


def test_a_gpu_with_mig_enabled_and_no_mig_device_is_refused_not_partitioned(node: Callable[..., Node]) -> None:
    n = node("dgx-a100", mig=True)
    before = n.machine.state_path.read_bytes()

    code, report = n.check("--gpu", "1")

    assert code == 1 and report["failed_step"] == "discovery"
    assert "never creates them" in report["error"]
    assert n.machine.state_path.read_bytes() == before


@namespaces
def test_without_the_gpus_device_node_the_stand_in_lists_no_gpu(node: Callable[..., Node]) -> None:
    """The stand-in honours device-node visibility, so the first test can fail."""
    n = node()
    program = str(n.root / "usr/bin/nvidia-smi")
    binds = ns.base_binds() + ns.image_binds(program)
    binds += [ns.Bind(program, "/usr/bin/nvidia-smi", True, "cdi-mount")]
    state = str(n.machine.state_path.resolve())
    binds += [ns.Bind(state, state, True, "simulation")]
    env = [f"PATH={ns.IMAGE_PATH}", f"DRA_SIM_NVML_STATE={state}", "NVIDIA_VISIBLE_DEVICES=all"]

    ran = ns.run_in_root(binds, env, ["nvidia-smi", "-L"], n.work)

    assert (ran.returncode, ran.output) == (6, "No devices were found\n")


def test_the_check_never_imports_the_simulator() -> None:
    code = "import sys, tools.real_gpu_check; print(sorted(m for m in sys.modules if m.startswith('nvml_sim')))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
