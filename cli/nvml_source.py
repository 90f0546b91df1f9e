"""Choose where NVML comes from for a command: the real library, a given path, or a simulated machine."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dra_driver.nvml.session import Nvml
from nvml_sim.control import SimulatedMachine
from nvml_sim.hardware import MACHINE_PROFILES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--simulate",
        metavar="PROFILE",
        choices=sorted(MACHINE_PROFILES),
        help=f"use a fresh simulated GPU node ({', '.join(sorted(MACHINE_PROFILES))})",
    )
    group.add_argument("--sim-state", metavar="PATH", type=Path, help="use an existing simulated machine's state file")
    parser.add_argument(
        "--nvml-lib",
        metavar="PATH",
        type=Path,
        default=Path(os.environ["NVML_LIB"]) if os.environ.get("NVML_LIB") else None,
        help="load libnvidia-ml.so.1 from this path (env NVML_LIB); default: the system loader path",
    )


def sysfs_root(args: argparse.Namespace) -> Path:
    """Where GPU placement (NUMA node, PCIe root) is read: the simulated machine's sysfs, else /sys."""
    return Path(getattr(args, "_sysfs_root", "/sys"))


@contextlib.contextmanager
def open_nvml(args: argparse.Namespace) -> Iterator[Nvml]:
    """An open NVML session as the arguments ask for it (a simulated machine's sysfs: ``sysfs_root(args)``)."""
    with contextlib.ExitStack() as stack:
        machine = None
        if args.simulate:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dra-sim-")))
            machine = SimulatedMachine.create(tmp / "machine.json", args.simulate)
        elif args.sim_state:
            machine = SimulatedMachine(args.sim_state)
        if machine is not None:
            machine.activate()
            args._sysfs_root = str(machine.sysfs_root())
        nvml = stack.enter_context(Nvml(args.nvml_lib))
        yield nvml
