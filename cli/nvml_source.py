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


@contextlib.contextmanager
def open_nvml(args: argparse.Namespace) -> Iterator[Nvml]:
    """An open NVML session as the arguments ask for it."""
    with contextlib.ExitStack() as stack:
        if args.simulate:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dra-sim-")))
            SimulatedMachine.create(tmp / "machine.json", args.simulate).activate()
        elif args.sim_state:
            SimulatedMachine(args.sim_state).activate()
        nvml = stack.enter_context(Nvml(args.nvml_lib))
        yield nvml
