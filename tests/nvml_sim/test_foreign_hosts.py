"""A process that is not Python (here a C program) sees the simulated machine, or a clear error, never an empty one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nvml_sim.control import SimulatedMachine
from tests.nvml_sim.foreign import c_host, sim_env

DOWN = "libnvidia-ml.so.1 (dra-driver simulated NVML):"


@pytest.fixture(scope="module")
def machine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("foreign")


@pytest.fixture(scope="module")
def host(machine_dir: Path) -> Path:
    return c_host(machine_dir)


@pytest.fixture(scope="module")
def env(machine_dir: Path) -> dict[str, str]:
    """The machine is only read by these tests, so they share it."""
    sim = SimulatedMachine.create(machine_dir / "node.json", "dgx-a100")
    return sim_env(sim.state_path)


def run(host: Path, env: dict[str, str], mode: str = "local") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(host), mode], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_c_host_loading_with_rtld_local_sees_the_machine_of_sim_env(host: Path, env: dict[str, str]) -> None:
    done = run(host, env, "local")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["init 0 Success", "count 0 8", "fan 3"]  # fan speed: not simulated
    assert done.stderr == ""


def test_a_c_host_loading_with_rtld_global_sees_it_too(host: Path, env: dict[str, str]) -> None:
    assert run(host, env, "global").stdout.splitlines()[:2] == ["init 0 Success", "count 0 8"]


def test_without_the_simulator_on_pythonpath_every_call_fails_and_says_why_once(
    host: Path, env: dict[str, str]
) -> None:
    done = run(host, {**env, "PYTHONPATH": "/nonexistent"})
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["init 12 NVML Shared Library Not Found", "count 1 999", "fan 1"]
    assert done.stderr.count(DOWN) == 1
    assert "No module named 'nvml_sim'" in done.stderr
    assert "dra-gpu sim env" in done.stderr


def test_a_python_home_without_python_is_an_error_not_an_aborted_process(host: Path, env: dict[str, str]) -> None:
    done = run(host, {**env, "PYTHONHOME": "/nonexistent"})
    assert done.returncode == 0
    assert done.stdout.splitlines()[:2] == ["init 12 NVML Shared Library Not Found", "count 1 999"]
    assert done.stderr.count(DOWN) == 1


def test_a_foreign_python_on_path_does_not_lend_its_standard_library(
    host: Path, env: dict[str, str], tmp_path: Path
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").symlink_to("/bin/true")  # a python3 on PATH that is not the library's
    done = run(host, {**env, "PATH": f"{fake}:/usr/bin:/bin"})
    assert done.stdout.splitlines()[:2] == ["init 0 Success", "count 0 8"]


def test_sim_env_names_the_machine_the_library_and_the_simulators_packages(
    env: dict[str, str], machine_dir: Path
) -> None:
    assert env["DRA_SIM_NVML_STATE"] == str(machine_dir / "node.json")
    assert (Path(env["LD_LIBRARY_PATH"].split(":")[0]) / "libnvidia-ml.so.1").is_file()
    paths = env["PYTHONPATH"].split(":")
    assert any((Path(p) / "nvml_sim" / "__init__.py").is_file() for p in paths)
    assert any((Path(p) / "cffi" / "__init__.py").is_file() for p in paths)
