"""``dra-gpu sandbox up|down|status|kubeconfig``: a real control plane on loopback with simulated GPU nodes."""

from __future__ import annotations

import argparse
from pathlib import Path

from nvml_sim.hardware import MACHINE_PROFILES
from sandbox import commands, faults, report
from sandbox.demo import run as run_demo
from sandbox.realnode.helm_driver import DRIVERS


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sandbox", help="run a local cluster: real control plane, simulated kubelets and GPUs")
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    up = ops.add_parser(
        "up",
        help="start the sandbox (builds the control-plane binaries on first use); "
        "exit 2 if one with other arguments runs",
    )
    up.add_argument(
        "--profile",
        default="dgx-a100",
        choices=["none", *sorted(MACHINE_PROFILES)],
        help="simulated GPU machine of every node, or none for nodes without GPUs (default dgx-a100)",
    )
    up.add_argument("--nodes", type=int, default=1)
    up.add_argument("--mode", help="mode of every GPU: whole (default), mig, timeslice:N or shared")
    up.add_argument(
        "--kubelet",
        choices=("real", "simulated"),
        help="real: the real kubelet and containerd in private namespaces (default where the host allows it); "
        "simulated: the project's simulated kubelet",
    )
    up.add_argument(
        "--driver",
        choices=DRIVERS,
        default="process",
        help="process (default): the plugin as a host process beside each node; helm (real nodes): the project's "
        "chart and simulated-GPU image, the plugin a DaemonSet pod in each node's containerd",
    )
    down = ops.add_parser("down", help="stop the sandbox and remove its node state (simulated GPUs, claims)")
    down.add_argument(
        "--keep-state",
        action="store_true",
        help="keep the node state for the next up with the same profile",
    )
    status = ops.add_parser("status", help="describe the running sandbox; exit 1 unless it is ready")
    status.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default) or json: the status document with each node's plugin metrics URL",
    )
    kubeconfig = ops.add_parser("kubeconfig", help="print the path of the running sandbox's admin kubeconfig")
    fault = ops.add_parser("fault", help="inject a GPU fault: lost, xid CODE, or none to clear it")
    fault.add_argument("node", metavar="NODE")
    fault.add_argument("--gpu", type=int, required=True, help="GPU index on that node")
    fault.add_argument("kind", choices=faults.KINDS, metavar="{lost,xid,none}")
    fault.add_argument("code", type=int, nargs="?", help="the XID, for xid (e.g. 79, 48, 63)")
    p.add_argument("--workdir", type=Path, default=None, help="sandbox directory (env DRA_SANDBOX_DIR)")
    for op_parser in (up, down, status, kubeconfig, fault):  # also after the operation: sandbox up --workdir DIR
        op_parser.add_argument("--workdir", type=Path, default=argparse.SUPPRESS, help="sandbox directory")
    p.set_defaults(func=run)
    demo = sub.add_parser("demo", help="the main job: sandbox + simulated DGX A100 + example claims, end to end")
    demo.add_argument("--keep", action="store_true", help="leave the sandbox running afterwards")
    demo.add_argument("--workdir", type=Path, default=None, help="sandbox directory (env DRA_SANDBOX_DIR)")
    demo.set_defaults(func=lambda a: run_demo(a.keep, a.workdir))


def run(args: argparse.Namespace) -> int:
    if args.op == "up":
        profile = "" if args.profile == "none" else args.profile
        return commands.sandbox_up(
            profile, args.nodes, args.workdir, mode=args.mode, kubelet=args.kubelet, driver=args.driver
        )
    if args.op == "down":
        return commands.sandbox_down(args.workdir, keep_state=args.keep_state)
    if args.op == "status":
        return report.sandbox_status(args.workdir, args.output)
    if args.op == "fault":
        return faults.sandbox_fault(args.node, args.gpu, args.kind, args.code, args.workdir)
    return report.sandbox_kubeconfig(args.workdir)
