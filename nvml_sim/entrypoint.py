"""Run the driver's kubelet plugin on simulated GPUs: the entry point of the simulated-GPU image.

The production plugin knows nothing of the simulator (an import-linter contract). This entry point, asked
explicitly (the chart's ``simulatedGpus.enabled``, which sets ``SIMULATED_GPUS=true`` and
``SIMULATED_GPU_PROFILE``), racks a simulated machine of the named profile and installs a simulated driver
(``driver_install``: the simulated NVML, a libcuda stand-in, stand-in programs), then replaces itself with the
unchanged plugin pointed at them::

    python -m nvml_sim.entrypoint [--profile dgx-a100] [--root DIR] [-- PLUGIN FLAGS...]
    -> exec python -m kubelet_plugin --driver-root DIR/driver-root --sysfs-root DIR/machine.sys PLUGIN FLAGS...

``DIR`` defaults to ``$STATE_DIR/simulated-gpus`` (``STATE_DIR`` defaults to the plugin's ``/var/lib/dra-gpu``):
in the chart that is a host directory mounted at the same path, so the host paths the plugin writes into CDI
specs (the driver root's files) exist for the container runtime. The machine (``machine.json``) is kept across
restarts, as a real machine keeps its MIG partitions; a machine of another profile is replaced. Its GPU UUIDs are
derived from ``NODE_NAME`` (or ``--node-name`` among the plugin flags), so every node has its own.

The simulated NVML library and the stand-in libraries are taken from ``NVML_SIM_LIBRARY`` and
``NVML_SIM_STANDINS`` when set (the image ships them built: it has no C compiler), else built into the cache.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nvml_sim.abi import STATE_ENV
from nvml_sim.build import library_path
from nvml_sim.control import SimulatedMachine
from nvml_sim.driver_install import install, standins_dir
from nvml_sim.hardware import MACHINE_PROFILES

PROFILE_ENV = "SIMULATED_GPU_PROFILE"
ENABLED_ENV = "SIMULATED_GPUS"
ROOT_ENV = "SIMULATED_GPU_ROOT"
LIBRARY_ENV = "NVML_SIM_LIBRARY"
STANDINS_ENV = "NVML_SIM_STANDINS"
DEFAULT_STATE_DIR = "/var/lib/dra-gpu"  # the plugin's --state-dir default
OWN_FLAGS = ("--driver-root", "--sysfs-root", "--nvml-lib", "--host-driver-root")  # set here, never by the caller
PLUGIN_MODULE = "kubelet_plugin"


class UsageError(ValueError):
    """A value this entry point cannot use; the message names where it came from and what is valid."""


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    machine: Path
    driver_root: Path


def check_profile(profile: str, source: str) -> str:
    if profile not in MACHINE_PROFILES:
        valid = ", ".join(sorted(MACHINE_PROFILES))
        shown = repr(profile) if profile else "nothing"
        raise UsageError(f"{source}: {shown} is not a simulated machine profile; valid profiles: {valid}")
    return profile


def _node_name(plugin_args: Sequence[str], environ: dict[str, str]) -> str:
    for i, arg in enumerate(plugin_args):
        if arg == "--node-name" and i + 1 < len(plugin_args):
            return plugin_args[i + 1]
        if arg.startswith("--node-name="):
            return arg.split("=", 1)[1]
    return environ.get("NODE_NAME", "")


def _state_dir(plugin_args: Sequence[str], environ: dict[str, str]) -> str:
    for i, arg in enumerate(plugin_args):
        if arg == "--state-dir" and i + 1 < len(plugin_args):
            return plugin_args[i + 1]
        if arg.startswith("--state-dir="):
            return arg.split("=", 1)[1]
    return environ.get("STATE_DIR") or DEFAULT_STATE_DIR


def _existing_file(variable: str, environ: dict[str, str]) -> Path | None:
    value = environ.get(variable, "")
    if not value:
        return None
    path = Path(value)
    if not path.exists():
        raise UsageError(f"{variable}: {value} does not exist")
    return path


def prepare(
    profile: str, root: Path, node: str, plugin_args: Sequence[str], environ: dict[str, str] | None = None
) -> Launch:
    """Rack the machine and install the driver under ``root``; the plugin's command line and environment."""
    env = dict(os.environ if environ is None else environ)
    check_profile(profile, "--profile")
    for arg in plugin_args:
        if arg.split("=", 1)[0] in OWN_FLAGS:
            raise UsageError(f"{arg.split('=', 1)[0]} is set by the simulated-GPU entry point; do not pass it")
    root.mkdir(parents=True, exist_ok=True)
    machine_file = root / "machine.json"
    sim = SimulatedMachine(machine_file) if machine_file.exists() else None
    if sim is None or sim.state().get("profile") != profile:
        sim = SimulatedMachine.create(machine_file, profile, node)
    library = _existing_file(LIBRARY_ENV, env) or library_path()
    standins = _existing_file(STANDINS_ENV, env) or standins_dir()
    driver_root = install(root / "driver-root", sim.state()["driverVersion"], library, standins)
    for name in OWN_FLAGS:  # flags win over variables, but no stray variable should point the plugin elsewhere
        env.pop(name.removeprefix("--").replace("-", "_").upper(), None)
    env[STATE_ENV] = str(machine_file.resolve())
    argv = [sys.executable, "-m", PLUGIN_MODULE, "--driver-root", str(driver_root.resolve())]
    argv += ["--sysfs-root", str(sim.sysfs_root().resolve()), *plugin_args]
    return Launch(argv, env, machine_file, driver_root)


def parse(argv: Sequence[str], environ: dict[str, str]) -> tuple[str, Path, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m nvml_sim.entrypoint",
        description="Run the kubelet plugin on a simulated GPU machine (flags after -- go to the plugin)",
    )
    parser.add_argument("--profile", default="", help=f"machine profile (env {PROFILE_ENV})")
    parser.add_argument(
        "--root", default="", help=f"machine and driver root (env {ROOT_ENV}; $STATE_DIR/simulated-gpus)"
    )
    args, rest = parser.parse_known_args(list(argv))
    plugin_args = rest[1:] if rest[:1] == ["--"] else rest
    if args.profile:
        profile = check_profile(args.profile, "--profile")
    else:
        enabled = environ.get(ENABLED_ENV, "")
        if enabled.lower() != "true":
            raise UsageError(
                f"{ENABLED_ENV}: {enabled!r} does not ask for simulated GPUs; set {ENABLED_ENV}=true and "
                f"{PROFILE_ENV}, or pass --profile"
            )
        profile = check_profile(environ.get(PROFILE_ENV, ""), PROFILE_ENV)
    root = Path(args.root or environ.get(ROOT_ENV, "") or Path(_state_dir(plugin_args, environ)) / "simulated-gpus")
    return profile, root, plugin_args


def main(argv: Sequence[str] | None = None) -> int:
    environ = dict(os.environ)
    try:
        profile, root, plugin_args = parse(sys.argv[1:] if argv is None else argv, environ)
        launch = prepare(profile, root, _node_name(plugin_args, environ), plugin_args, environ)
    except (UsageError, OSError, RuntimeError) as exc:
        print(f"simulated GPUs: {exc}", file=sys.stderr)
        return 2
    print(
        f"simulated GPUs: {profile} machine {launch.machine}, driver root {launch.driver_root}; starting the plugin",
        file=sys.stderr,
        flush=True,
    )
    os.execve(launch.argv[0], launch.argv, launch.env)


if __name__ == "__main__":
    sys.exit(main())
