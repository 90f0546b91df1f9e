"""``dra-gpu lint FILES...``: check DRA manifests before applying them (the linter is ``cli.lint``).

This module parses arguments and, for ``--profile``, builds the simulated machine's ResourceSlices.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from api.partitioning import MAX_TIMESLICE_REPLICAS, GpuMode, Mig, Shared, TimeSlice, Whole, parse_mode
from cli.lint import command as lint
from dra_driver.classes import DEFAULT_DRIVER
from dra_driver.errors import DriverError
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.render import render
from dra_driver.slices.builder import build_pool
from nvml_sim.control import SimulatedMachine
from nvml_sim.hardware import MACHINE_PROFILES

EVERY_MODE: tuple[GpuMode, ...] = (Whole(), Mig(), TimeSlice(MAX_TIMESLICE_REPLICAS), Shared())


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "lint",
        help="check DeviceClass / ResourceClaim / ResourceClaimTemplate manifests (exit 0 clean, 1 findings, 2 error)",
        description="Check DRA manifests: structure, CEL selectors, this driver's opaque configs, device class "
        "references and, with --profile or --kubeconfig, whether any device could ever satisfy each request.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="YAML or JSON files, directories, or - for stdin")
    p.add_argument(
        "--profile",
        choices=sorted(MACHINE_PROFILES),
        help="check requests against the devices of this simulated machine (every mode unless --mode)",
    )
    p.add_argument("--mode", help="with --profile: the mode of every GPU (whole, mig, timeslice:N or shared)")
    p.add_argument("--kubeconfig", type=Path, help="also look up DeviceClasses and check against this cluster's slices")
    p.add_argument("--driver", default=DEFAULT_DRIVER, help=f"the driver name (default {DEFAULT_DRIVER})")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=run, parser=p)


def profile_slices(profile: str, modes: tuple[GpuMode, ...], driver: str = DEFAULT_DRIVER) -> dict[str, list[Any]]:
    """The ResourceSlices a fresh simulated ``profile`` machine publishes in each mode (node named ``profile``)."""
    with tempfile.TemporaryDirectory(prefix="dra-lint-") as tmp:
        machine = SimulatedMachine.create(Path(tmp) / "machine.json", profile)
        machine.activate()
        with Nvml() as nvml:
            inventory = discover(nvml, machine.sysfs_root())
    out = {}
    for mode in modes:
        pool = build_pool(inventory, {g.index: mode for g in inventory.gpus}, Capabilities(), driver, profile)
        out[str(mode)] = render(pool, 1, "v1")
    return out


def run(args: argparse.Namespace) -> int:
    if args.mode and not args.profile:
        args.parser.error("--mode needs --profile")
    slices = None
    if args.profile:
        modes = (parse_mode(args.mode, "--mode"),) if args.mode else EVERY_MODE
        try:
            slices = profile_slices(args.profile, modes, args.driver)
        except DriverError as e:  # exit 1 means findings: a machine that cannot be simulated is an error
            print(f"dra-gpu lint: cannot build the slices of profile {args.profile}: {e}", file=sys.stderr)
            return 2
    code: int = lint.run(
        lint.LintArgs(
            files=args.files,
            driver=args.driver,
            output=args.output,
            profile=args.profile,
            profile_slices=slices,
            kubeconfig=args.kubeconfig,
        )
    )
    return code
