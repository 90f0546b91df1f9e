"""``dra-gpu explain (claim NAME | pod NAME)``: why claims cannot be allocated, node by node (live cluster).

Only the arguments live here; the work is done by ``cli.explain`` on top of ``dra_driver.structured``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli import explain


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "explain",
        help="why a claim or a pod's claims cannot be allocated, per node, and what would fit",
        description="Runs the scheduler's allocation (dra_driver.structured) on every candidate node of a live "
        "cluster and says which request, selector, counter, taint or constraint blocks it.",
    )
    p.add_argument("kind", choices=["claim", "pod"], help="explain a ResourceClaim or all claims of a Pod")
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--kubeconfig", type=Path, help="default: in-cluster config, else $KUBECONFIG / ~/.kube/config")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return explain.run(args)
