"""``dra-gpu explain (claim NAME | pod NAME)``: why claims cannot be allocated, node by node, and the mode
changes running or planned for them (live cluster, or YAML files with ``-f``).

Only the arguments live here; the work is done by ``cli.explain`` on top of ``dra_driver.structured``, or by the
mode controller (``cli.explain_remote``): each imported when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from api.names import DEFAULT_DRIVER_NAME


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "explain",
        help="why a claim or a pod's claims cannot be allocated, per node, what would fit, and mode changes",
        description="Runs the scheduler's allocation (dra_driver.structured) on every candidate node of a live "
        "cluster (or of YAML files) and says which request, selector, counter, taint or constraint blocks it; then "
        "the GPU mode changes in progress (NodeGpuModes spec vs status) and what the mode controller would do now "
        "for the claims (docs/explain.md).",
    )
    p.add_argument("kind", choices=["claim", "pod"], help="explain a ResourceClaim or all claims of a Pod")
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--kubeconfig", type=Path, help="default: in-cluster config, else $KUBECONFIG / ~/.kube/config")
    p.add_argument("-f", "--filename", type=Path, action="append", default=[], help="YAML file(s) instead of a cluster")
    p.add_argument("--policy", type=Path, help="the mode controller's ModePolicy YAML (default: its defaults)")
    p.add_argument("--driver", default=DEFAULT_DRIVER_NAME)
    p.add_argument("--now", help="with -f: the time to plan at, RFC 3339 (default: now)")
    p.add_argument("--no-partitionable-devices", action="store_true", help="with -f: the cluster lacks them")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument(
        "--controller",
        metavar="URL",
        help="ask the mode controller's explain listener (e.g. http://127.0.0.1:8081 after kubectl port-forward): "
        "it answers from its watch cache, without reading the cluster again",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.controller:  # imports only what asking takes
        from cli import explain_remote

        return explain_remote.print_answer(args)
    from cli import explain

    return explain.run(args)
