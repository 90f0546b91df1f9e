"""The simulated-GPU image's entry point (nvml_sim/entrypoint.py): asked explicitly, it racks a machine of the named
profile, installs a simulated driver root and hands the unchanged plugin --driver-root / --sysfs-root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nvml_sim.abi import STATE_ENV
from nvml_sim.control import SimulatedMachine
from nvml_sim.entrypoint import UsageError, parse, prepare
from nvml_sim.hardware import MACHINE_PROFILES

VALID = ", ".join(sorted(MACHINE_PROFILES))


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nvml_sim.entrypoint", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ((), {"SIMULATED_GPUS": "true", "SIMULATED_GPU_PROFILE": "dgx-b200"}, "SIMULATED_GPU_PROFILE: 'dgx-b200'"),
        ((), {"SIMULATED_GPUS": "true"}, "SIMULATED_GPU_PROFILE: nothing"),
        (("--profile", "DGX-A100"), {}, "--profile: 'DGX-A100'"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_value_and_the_valid_profiles(
    args: tuple[str, ...], env: dict[str, str], named: str, tmp_path: Path
) -> None:
    done = _run(*args, "--root", str(tmp_path / "sim"), env=env)
    assert done.returncode == 2
    assert f"{named} is not a simulated machine profile; valid profiles: {VALID}" in done.stderr
    assert not (tmp_path / "sim").exists()  # nothing racked


def test_without_an_explicit_request_nothing_is_simulated(tmp_path: Path) -> None:
    done = _run("--root", str(tmp_path / "sim"), env={"SIMULATED_GPUS": "false", "SIMULATED_GPU_PROFILE": "l4"})
    assert done.returncode == 2 and "SIMULATED_GPUS: 'false' does not ask for simulated GPUs" in done.stderr
    assert not (tmp_path / "sim").exists()


def test_the_root_defaults_to_the_plugins_state_dir() -> None:
    env = {"SIMULATED_GPUS": "true", "SIMULATED_GPU_PROFILE": "l4", "STATE_DIR": "/data/dra"}
    assert parse([], env) == ("l4", Path("/data/dra/simulated-gpus"), [])
    assert parse(["--", "--state-dir", "/x"], env)[1] == Path("/x/simulated-gpus")
    assert parse(["--profile", "dgx-h100", "--", "--v"], {})[::2] == ("dgx-h100", ["--v"])


def test_prepare_racks_the_machine_installs_the_driver_and_points_the_plugin_at_them(tmp_path: Path) -> None:
    root = tmp_path / "sim"
    launch = prepare("single-a100", root, "node-a", ["--node-name", "node-a"], {"DRIVER_ROOT": "/elsewhere"})
    state = SimulatedMachine(root / "machine.json").state()
    assert state["profile"] == "single-a100" and len(state["gpus"]) == 1
    nvml = launch.driver_root / "usr" / "lib" / "x86_64-linux-gnu" / "libnvidia-ml.so.1"
    assert nvml.resolve().name == f"libnvidia-ml.so.{state['driverVersion']}"
    assert (launch.driver_root / "usr" / "bin" / "nvidia-smi").is_file()
    assert launch.argv[1:] == [
        "-m",
        "kubelet_plugin",
        "--driver-root",
        str(launch.driver_root.resolve()),
        "--sysfs-root",
        str((root / "machine.sys").resolve()),
        "--node-name",
        "node-a",
    ]
    assert launch.env[STATE_ENV] == str((root / "machine.json").resolve())
    assert "DRIVER_ROOT" not in launch.env  # the flag decides, no stray variable


def test_the_machine_survives_a_restart_and_is_replaced_for_another_profile(tmp_path: Path) -> None:
    root = tmp_path / "sim"
    prepare("dgx-a100", root, "node-a", [], {})
    sim = SimulatedMachine(root / "machine.json")
    sim.set_fault(2, "lost")
    prepare("dgx-a100", root, "node-a", [], {})  # a plugin restart: same machine, same fault
    assert json.dumps(SimulatedMachine(root / "machine.json").state()) == json.dumps(sim.state())
    assert sim.state()["gpus"][2].get("fault") == "lost"
    prepare("l4", root, "node-a", [], {})
    assert SimulatedMachine(root / "machine.json").state()["profile"] == "l4"


def test_flags_the_entry_point_sets_cannot_be_passed(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--driver-root is set by the simulated-GPU entry point"):
        prepare("l4", tmp_path, "n", ["--driver-root=/"], {})


def test_a_named_prebuilt_library_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"NVML_SIM_LIBRARY: /nope/libnvidia-ml\.so\.1 does not exist"):
        prepare("l4", tmp_path, "n", [], {"NVML_SIM_LIBRARY": "/nope/libnvidia-ml.so.1"})


def test_the_entry_point_execs_the_plugin_on_the_simulated_driver(tmp_path: Path) -> None:
    # the plugin starts (it reaches its own flag checks, which run after the exec) with the entry point's flags
    done = _run("--profile", "l4", "--root", str(tmp_path / "sim"), "--", "--rescan-seconds", "0", env={})
    assert done.returncode == 2, done.stderr
    assert "simulated GPUs: l4 machine" in done.stderr
    assert "dra-gpu-plugin: error: --node-name (env NODE_NAME) is required" in done.stderr


def test_prebuilt_stand_ins_must_be_complete(tmp_path: Path) -> None:
    (tmp_path / "standins").mkdir()
    (tmp_path / "standins" / "libcuda.so.1").write_bytes(b"\x7fELF")
    with pytest.raises(FileNotFoundError, match=r"lacks libnvidia-allocator\.so\.1, libnvidia-cfg\.so\.1"):
        prepare("l4", tmp_path / "sim", "n", [], {"NVML_SIM_STANDINS": str(tmp_path / "standins")})
