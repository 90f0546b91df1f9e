"""``dra-gpu sandbox up|down|status|kubeconfig``: a real control plane on loopback with simulated GPU nodes."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from api.names import API_VERSION
from api.partitioning import KIND, parse_mode
from nvml_sim.hardware import MACHINE_PROFILES
from sandbox import commands
from sandbox.agents import partitioning_file
from sandbox.demo import run as run_demo
from sandbox.layout import Layout, default_workdir


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sandbox", help="run a local cluster: real control plane, simulated kubelets and GPUs")
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    up = ops.add_parser("up", help="start the sandbox (builds the control-plane binaries on first use)")
    up.add_argument(
        "--profile",
        default="dgx-a100",
        choices=["none", *sorted(MACHINE_PROFILES)],
        help="simulated GPU machine of every node, or none for nodes without GPUs (default dgx-a100)",
    )
    up.add_argument("--nodes", type=int, default=1)
    up.add_argument("--mode", help="mode of every GPU: whole (default), mig, timeslice:N or shared")
    for op in ("down", "status", "kubeconfig"):
        ops.add_parser(op)
    p.add_argument("--workdir", type=Path, default=None, help="sandbox directory (env DRA_SANDBOX_DIR)")
    p.set_defaults(func=run)
    demo = sub.add_parser("demo", help="the main job: sandbox + simulated DGX A100 + example claims, end to end")
    demo.add_argument("--keep", action="store_true", help="leave the sandbox running afterwards")
    demo.add_argument("--workdir", type=Path, default=None, help="sandbox directory (env DRA_SANDBOX_DIR)")
    demo.set_defaults(func=lambda a: run_demo(a.keep, a.workdir))


def run(args: argparse.Namespace) -> int:
    if args.op == "up":
        workdir = (args.workdir or default_workdir()).resolve()
        if args.mode:
            parse_mode(args.mode, "--mode")
            path = partitioning_file(Layout(workdir))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump({"apiVersion": API_VERSION, "kind": KIND, "defaultMode": args.mode}))
        return commands.sandbox_up("" if args.profile == "none" else args.profile, args.nodes, workdir)
    if args.op == "down":
        return commands.sandbox_down(args.workdir)
    if args.op == "status":
        return commands.sandbox_status(args.workdir)
    return commands.sandbox_kubeconfig(args.workdir)
