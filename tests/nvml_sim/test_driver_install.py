"""The simulated driver installation looks like a real one to the driver's discovery, loaders and readelf."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dra_driver.driver_root import DriverFile, discover_driver_files
from e2e.wait import until
from nvml_sim.build import library_path
from nvml_sim.control import SimulatedMachine
from nvml_sim.driver_install import LIBRARY_DIR, calls_log, install
from nvml_sim.hardware import MACHINE_PROFILES

VERSION = MACHINE_PROFILES["dgx-a100"].driver_version


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return install(tmp_path / "driver-root", VERSION, library_path())


def test_the_installation_has_versioned_libraries_their_soname_links_binaries_and_firmware(root: Path) -> None:
    lib = root / LIBRARY_DIR
    assert (lib / f"libnvidia-ml.so.{VERSION}").read_bytes() == library_path().read_bytes()
    links = {p.name: os.readlink(p) for p in lib.iterdir() if p.is_symlink()}
    assert (
        links["libnvidia-ml.so.1"] == f"libnvidia-ml.so.{VERSION}" and links["libnvidia-ml.so"] == "libnvidia-ml.so.1"
    )
    assert links["libcuda.so.1"] == f"libcuda.so.{VERSION}" and links["libcuda.so"] == "libcuda.so.1"
    assert links["libnvidia-nvvm.so.4"] == f"libnvidia-nvvm.so.{VERSION}"

    files = discover_driver_files(root)

    assert files.version == VERSION
    assert {(lib.stem, lib.soname) for lib in files.libraries} == {
        ("libcuda", "libcuda.so.1"),
        ("libnvidia-allocator", "libnvidia-allocator.so.1"),
        ("libnvidia-cfg", "libnvidia-cfg.so.1"),
        ("libnvidia-ml", "libnvidia-ml.so.1"),
        ("libnvidia-nvvm", "libnvidia-nvvm.so.4"),
        ("libnvidia-ptxjitcompiler", "libnvidia-ptxjitcompiler.so.1"),
    }
    assert [name for name, _ in files.binaries] == ["nvidia-cuda-mps-control", "nvidia-cuda-mps-server", "nvidia-smi"]
    gsp = f"/lib/firmware/nvidia/{VERSION}/gsp_ga10x.bin"
    assert files.firmware == (DriverFile(gsp, gsp),)


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs binutils' readelf")
def test_the_libcuda_stand_in_is_an_elf_shared_object_with_the_real_soname(root: Path) -> None:
    out = subprocess.run(
        ["readelf", "-d", str(root / LIBRARY_DIR / f"libcuda.so.{VERSION}")], capture_output=True, text=True, check=True
    )
    assert "Library soname: [libcuda.so.1]" in out.stdout


def test_the_libcuda_stand_in_loads_and_answers_no_device(root: Path) -> None:
    cuda = ctypes.CDLL(str(root / LIBRARY_DIR / "libcuda.so.1"))
    version = ctypes.c_int(-1)
    assert cuda.cuInit(0) == 100  # CUDA_ERROR_NO_DEVICE
    assert cuda.cuDriverGetVersion(ctypes.byref(version)) == 100


def test_the_stand_in_binaries_say_what_they_are_and_fail_what_they_cannot_do(root: Path) -> None:
    smi = root / "usr" / "bin" / "nvidia-smi"
    assert "STAND-IN" in smi.read_text().splitlines()[1]
    done = subprocess.run([str(smi), "-q"], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "stand-in of the dra-driver sandbox" in done.stderr
    no_machine = {k: v for k, v in os.environ.items() if k != "DRA_SIM_NVML_STATE"}
    listed = subprocess.run([str(smi), "-L"], capture_output=True, text=True, check=False, env=no_machine)
    assert listed.returncode == 9  # as the real one without a kernel driver
    assert "couldn't communicate with the NVIDIA driver" in listed.stdout and "DRA_SIM_NVML_STATE" in listed.stdout
    version = subprocess.run([str(smi), "--version"], capture_output=True, text=True, check=True)
    assert VERSION in version.stdout
    server = root / "usr" / "bin" / "nvidia-cuda-mps-server"
    assert subprocess.run([str(server)], capture_output=True, check=False).returncode != 0


def _run(root: Path, program: str, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(root / "usr" / "bin" / program), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _calls(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in calls_log(root).read_text().splitlines()]


def test_the_stand_in_nvidia_smi_records_its_calls_and_keeps_the_time_slice_interval(root: Path) -> None:
    assert "Timeslice                         : DEFAULT" in _run(root, "nvidia-smi", "compute-policy", "-i", "G", "-l")
    _run(root, "nvidia-smi", "compute-policy", "-i", "G", "--set-timeslice", "2")
    _run(root, "nvidia-smi", "compute-policy", "-i", "H", "--set-timeslice=3")
    out = _run(root, "nvidia-smi", "compute-policy", "-i", "G,H", "-l")
    assert out.split("GPU ")[1:] == [
        "G\n    Timeslice                         : MEDIUM\n",
        "H\n    Timeslice                         : LONG\n",
    ]
    calls = _calls(root)
    assert [c["argv"] for c in calls] == [
        ["compute-policy", "-i", "G", "-l"],
        ["compute-policy", "-i", "G", "--set-timeslice", "2"],
        ["compute-policy", "-i", "H", "--set-timeslice=3"],
        ["compute-policy", "-i", "G,H", "-l"],
    ]
    assert {c["program"] for c in calls} == {"nvidia-smi"}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_the_stand_in_mps_control_daemon_starts_detached_takes_commands_and_quits(root: Path, tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    env = {
        "CUDA_MPS_PIPE_DIRECTORY": str(pipe),
        "CUDA_MPS_LOG_DIRECTORY": str(pipe / "log"),
        "CUDA_VISIBLE_DEVICES": "G",
    }
    _run(root, "nvidia-cuda-mps-control", "-d", env=env)
    pid = int((pipe / "nvidia-cuda-mps-control.pid").read_text())
    try:
        assert _alive(pid) and b"nvidia-cuda-mps-control" in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert os.getsid(pid) == pid  # detached in its own session, like the real daemon
        _run(root, "nvidia-cuda-mps-control", stdin="set_default_active_thread_percentage 25\n", env=env)
        assert _run(root, "nvidia-cuda-mps-control", stdin="get_default_active_thread_percentage\n", env=env) == "25\n"
        _run(root, "nvidia-cuda-mps-control", stdin="quit\n", env=env)
        assert not _alive(pid) and not (pipe / "nvidia-cuda-mps-control.pid").exists()
    finally:
        if _alive(pid):
            os.kill(pid, 9)
    calls = _calls(root)
    assert [(c["argv"], c.get("stdin")) for c in calls] == [
        (["-d"], None),
        ([], ["set_default_active_thread_percentage 25"]),
        ([], ["get_default_active_thread_percentage"]),
        ([], ["quit"]),
    ]
    assert all(c["env"] == env for c in calls)
    assert "Starting control daemon" in (pipe / "log" / "control.log").read_text()
    done = subprocess.run(
        [str(root / "usr" / "bin" / "nvidia-cuda-mps-control")],
        input="quit\n",
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "Cannot find MPS control daemon process" in done.stderr


def test_a_stand_in_daemon_whose_pipe_directory_is_removed_exits(root: Path, tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    _run(
        root,
        "nvidia-cuda-mps-control",
        "-d",
        env={"CUDA_MPS_PIPE_DIRECTORY": str(pipe), "CUDA_MPS_LOG_DIRECTORY": str(pipe)},
    )
    pid = int((pipe / "nvidia-cuda-mps-control.pid").read_text())
    shutil.rmtree(pipe)
    until(lambda: not _alive(pid), f"stand-in daemon {pid} gone", timeout=5, interval=0.05)


def test_installing_again_changes_nothing(root: Path) -> None:
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*") if not p.is_symlink()}
    install(root, VERSION, library_path())
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*") if not p.is_symlink()} == before


def test_installing_another_version_repoints_the_links_and_keeps_the_old_files(root: Path) -> None:
    install(root, "590.10.2", library_path())
    lib = root / LIBRARY_DIR
    assert os.readlink(lib / "libcuda.so.1") == "libcuda.so.590.10.2"
    assert (lib / f"libcuda.so.{VERSION}").is_file()
    assert discover_driver_files(root).version == "590.10.2"


def test_a_driver_version_that_is_no_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"not like 580\.95\.05"):
        install(tmp_path, "../../etc", library_path())


LOAD_FROM_ROOT = """
import sys
import time
from pathlib import Path
from typing import Any
from dra_driver.driver_root import discover_driver_files
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
files = discover_driver_files(Path(sys.argv[1]))
with Nvml(files.nvml_library) as nvml:
    print(files.version, discover(nvml).driver_version)
"""


def test_nvml_loaded_from_the_installation_reports_the_machines_driver_version(root: Path, tmp_path: Path) -> None:
    """Without LD_LIBRARY_PATH: the library is found under the driver root, as the plugin finds it."""
    sim = SimulatedMachine.create(tmp_path / "machine.json", "dgx-a100")
    env = {k: v for k, v in {**os.environ, **sim.environ()}.items() if k != "LD_LIBRARY_PATH"}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_FROM_ROOT, str(root)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [VERSION, sim.state()["driverVersion"]]
