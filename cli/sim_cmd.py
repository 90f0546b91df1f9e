"""``dra-gpu sim``: create and operate simulated GPU machines (for tests, demos and the sandbox)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nvml_sim.control import InvalidRequest, SimulatedMachine
from nvml_sim.hardware import MACHINE_PROFILES


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sim", help="create and operate simulated GPU machines")
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    create = ops.add_parser("create", help="create a simulated machine state file")
    create.add_argument("state", type=Path)
    create.add_argument("--profile", required=True, choices=sorted(MACHINE_PROFILES))
    create.add_argument("--host", default="", help="host name (makes GPU UUIDs unique per simulated node)")
    create.add_argument("--mig-disabled", action="store_true", help="start MIG-capable GPUs with MIG disabled")
    fault = ops.add_parser(
        "fault",
        help="inject a fault: lost (GPU_IS_LOST), failing (creates fail), ci-failing (compute-instance creates fail), none",
    )
    fault.add_argument("state", type=Path)
    fault.add_argument("--gpu", type=int, required=True)
    fault.add_argument("kind", choices=["lost", "failing", "ci-failing", "none"])
    reset = ops.add_parser("reset", help="reset a GPU (applies a pending MIG mode, destroys MIG instances)")
    reset.add_argument("state", type=Path)
    reset.add_argument("--gpu", type=int, required=True)
    show = ops.add_parser("show", help="print the machine state as JSON")
    show.add_argument("state", type=Path)
    ops.add_parser("profiles", help="list the simulated machine profiles")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.op == "profiles":
        for name, profile in sorted(MACHINE_PROFILES.items()):
            print(f"{name:16} {profile.description}")
        return 0
    if args.op == "create":
        SimulatedMachine.create(args.state, args.profile, args.host, mig_enabled=not args.mig_disabled)
        print(f"created {args.state} ({args.profile})")
        return 0
    if not args.state.is_file():
        print(
            f"dra-gpu sim {args.op}: no simulated machine at {args.state}; create one with 'dra-gpu sim create'",
            file=sys.stderr,
        )
        return 2
    sim = SimulatedMachine(args.state)
    try:
        if args.op == "fault":
            sim.set_fault(args.gpu, None if args.kind == "none" else args.kind)
        elif args.op == "reset":
            sim.reset_gpu(args.gpu)
        else:
            sys.stdout.write(json.dumps(sim.state(), indent=2) + "\n")
    except InvalidRequest as exc:
        print(f"dra-gpu sim {args.op}: {exc}", file=sys.stderr)
        return 2
    return 0
