"""``dra-gpu sim``: create and operate simulated GPU machines (for tests, demos and the sandbox)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from nvml_sim import events
from nvml_sim.control import InvalidRequest, SimulatedMachine
from nvml_sim.hardware import MACHINE_PROFILES

EVENT_NAMES = {
    events.SINGLE_BIT_ECC_ERROR: "SingleBitEccError",
    events.DOUBLE_BIT_ECC_ERROR: "DoubleBitEccError",
    events.PSTATE: "PState",
    events.XID_CRITICAL_ERROR: "XidCriticalError",
    events.CLOCK: "Clock",
    events.MIG_CONFIG_CHANGE: "MigConfigChange",
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sim", help="create and operate simulated GPU machines")
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    create = ops.add_parser("create", help="create a simulated machine state file (and its sysfs tree)")
    create.add_argument("state", type=Path)
    create.add_argument("--profile", required=True, choices=sorted(MACHINE_PROFILES))
    create.add_argument("--host", default="", help="host name (makes GPU UUIDs unique per simulated node)")
    create.add_argument("--mig-disabled", action="store_true", help="start MIG-capable GPUs with MIG disabled")
    fault = ops.add_parser(
        "fault",
        help="inject a fault: lost (XID 79, then GPU_IS_LOST), failing (creates fail), "
        "ci-failing (compute-instance creates fail), none (clears the fault and the GPU's events)",
    )
    fault.add_argument("state", type=Path)
    fault.add_argument("--gpu", type=int, required=True)
    fault.add_argument("kind", choices=["lost", "failing", "ci-failing", "none"])
    xid = ops.add_parser("xid", help="the GPU reports an XID critical error (an NVML event)")
    xid.add_argument("state", type=Path)
    xid.add_argument("--gpu", type=int, required=True)
    xid.add_argument("xid", type=int, help="the XID, e.g. 48 (double-bit ECC), 63, 79 (fell off the bus)")
    ecc = ops.add_parser("ecc", help="the GPU reports ECC memory errors (counted, and NVML events)")
    ecc.add_argument("state", type=Path)
    ecc.add_argument("--gpu", type=int, required=True)
    ecc.add_argument("--corrected", action="store_true", help="single-bit (corrected) instead of double-bit")
    ecc.add_argument("--count", type=int, default=1)
    evs = ops.add_parser("events", help="list the recorded events (or forget them with --clear)")
    evs.add_argument("state", type=Path)
    evs.add_argument("--gpu", type=int, help="only this GPU's")
    evs.add_argument("--clear", action="store_true")
    reset = ops.add_parser("reset", help="reset a GPU (applies a pending MIG mode, destroys MIG instances)")
    reset.add_argument("state", type=Path)
    reset.add_argument("--gpu", type=int, required=True)
    show = ops.add_parser("show", help="print the machine state as JSON")
    show.add_argument("state", type=Path)
    env = ops.add_parser(
        "env", help="print the shell exports that make any NVML client (Python, Go, C) see this machine"
    )
    env.add_argument("state", type=Path)
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
    try:
        _operate(SimulatedMachine(args.state), args)
    except InvalidRequest as exc:
        print(f"dra-gpu sim {args.op}: {exc}", file=sys.stderr)
        return 2
    return 0


def _operate(sim: SimulatedMachine, args: argparse.Namespace) -> None:
    if args.op == "fault":
        sim.set_fault(args.gpu, None if args.kind == "none" else args.kind)
    elif args.op == "xid":
        sim.inject_xid(args.gpu, args.xid)
    elif args.op == "ecc":
        sim.inject_ecc_error(args.gpu, uncorrected=not args.corrected, count=args.count)
    elif args.op == "events":
        _events(sim, args.gpu, args.clear)
    elif args.op == "reset":
        sim.reset_gpu(args.gpu)
    elif args.op == "env":
        _env(sim)
    else:
        sys.stdout.write(json.dumps(sim.state(), indent=2) + "\n")


def _events(sim: SimulatedMachine, gpu: int | None, clear: bool) -> None:
    if clear:
        sim.clear_events(gpu)
        return
    for e in sim.events():
        if gpu is None or e.gpu == gpu:
            data = f" {e.data}" if e.type == events.XID_CRITICAL_ERROR else ""
            print(f"{e.seq:6} gpu {e.gpu} {EVENT_NAMES.get(e.type, hex(e.type))}{data}")


def _env(sim: SimulatedMachine) -> None:
    sim.state()  # refuses a file that is not a machine
    print(f'# the simulated machine {sim.state_path.resolve()}: eval "$(dra-gpu sim env {sim.state_path})"')
    for name, value in sim.environ().items():
        print(f"export {name}={shlex.quote(value)}")
    print(f"# its sysfs (NUMA nodes, PCIe roots of the GPUs): {sim.sysfs_root().resolve()}")
