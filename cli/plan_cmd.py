"""``dra-gpu plan``: what the mode controller would do now, and why, against a live cluster or YAML files.

The decision is the controller's own (``controller.planner.decide``) on the same inputs it watches: Nodes,
unbound Pods, ResourceClaims, ResourceSlices, DeviceClasses and NodeGpuModes. Nothing is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from api import gpumodes
from api.config import strict
from api.names import DEFAULT_DRIVER_NAME
from cli.output import dump, table
from controller.planner import Decision, Policy, World, decide, load_policy
from controller.planner.world import timestamp
from dra_driver.classes import device_classes
from dra_driver.errors import FatalError
from dra_driver.k8s import ApiError, Kube, resource_path
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.probe import probe

Obj = dict[str, Any]
KINDS = {  # kind -> World field
    "Node": "nodes",
    "Pod": "pods",
    "ResourceClaim": "claims",
    "ResourceSlice": "slices",
    "DeviceClass": "classes",
    gpumodes.KIND: "node_modes",
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "plan",
        help="what the mode controller would change now, and why",
        description="Runs the mode controller's decision (no writes) on a live cluster or on YAML files holding "
        "Nodes, Pods, ResourceClaims, ResourceSlices, DeviceClasses and NodeGpuModes (docs/controller.md).",
    )
    p.add_argument("-f", "--filename", type=Path, action="append", default=[], help="YAML file(s) instead of a cluster")
    p.add_argument("--kubeconfig", type=Path, help="default: in-cluster config, else $KUBECONFIG / ~/.kube/config")
    p.add_argument("--policy", type=Path, help="ModePolicy YAML (default: the controller's defaults)")
    p.add_argument("--driver", default=DEFAULT_DRIVER_NAME)
    p.add_argument("--now", help="with -f: the time to decide at, RFC 3339 (default: now)")
    p.add_argument("--no-partitionable-devices", action="store_true", help="with -f: the cluster lacks them")
    p.add_argument("--no-consumable-capacity", action="store_true", help="with -f: the cluster lacks it")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=run)


def _from_files(paths: list[Path], caps: Capabilities, driver: str) -> tuple[World, list[str]]:
    found: dict[str, list[Obj]] = {field: [] for field in KINDS.values()}
    for path in paths:
        for i, doc in enumerate(strict.load_yaml_documents(path.read_text())):
            items = doc.get("items", []) if isinstance(doc, dict) and doc.get("kind", "").endswith("List") else [doc]
            for obj in items:
                kind = obj.get("kind") if isinstance(obj, dict) else None
                if kind not in KINDS:
                    raise FatalError(f"{path}: document {i + 1}: kind {kind!r} is not one of {', '.join(KINDS)}")
                found[KINDS[kind]].append(obj)
    notes = []
    if not found["classes"]:
        found["classes"] = device_classes(driver, caps)
        notes.append("no DeviceClasses given: using the driver's shipped classes")
    nodes = {str(n["metadata"]["name"]): dict(n["metadata"].get("labels") or {}) for n in found["nodes"]}
    if not nodes:
        nodes = {str(s["spec"]["nodeName"]): {} for s in found["slices"] if s.get("spec", {}).get("nodeName")}
        notes.append("no Nodes given: nodes taken from the slices, without labels (none is opted in)")
    world = World(
        nodes, found["slices"], found["classes"], found["claims"], found["pods"], found["node_modes"], caps, driver
    )
    return world, notes


def _list_if_served(kube: Kube, path: str) -> list[Obj]:
    """The collection; [] when its CustomResourceDefinition is not installed (no controller ran)."""
    try:
        return kube.list(path)
    except ApiError as exc:
        if exc.not_found:
            return []
        raise


def _from_cluster(kube: Kube, driver: str) -> World:
    caps = probe(kube)
    if caps.api_version != "v1":
        raise FatalError(f"planning needs resource.k8s.io/v1 (Kubernetes 1.34+); the server serves {caps.api_version}")
    r = "resource.k8s.io/v1"
    return World(
        nodes={str(n["metadata"]["name"]): dict(n["metadata"].get("labels") or {}) for n in kube.list("/api/v1/nodes")},
        slices=kube.list(resource_path(r, "resourceslices")),
        classes=kube.list(resource_path(r, "deviceclasses")),
        claims=kube.list(resource_path(r, "resourceclaims")),
        pods=kube.list("/api/v1/pods", fieldSelector="spec.nodeName="),
        node_modes=_list_if_served(kube, resource_path(gpumodes.API_VERSION, gpumodes.PLURAL)),
        caps=caps,
        driver=driver,
    )


def _table(decision: Decision) -> str:
    out = ""
    if decision.changes:
        rows = [(c.node, c.gpu_index, c.current, str(c.target), len(c.claims)) for c in decision.changes]
        out += table(["NODE", "GPU", "FROM", "TO", "CLAIMS"], rows) + "\n"
    return out + "\n".join(decision.lines()) + "\n"


def run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy.read_text()) if args.policy else Policy()
    notes: list[str] = []
    if args.filename:
        caps = replace(
            Capabilities(),
            partitionable_devices=not args.no_partitionable_devices,
            consumable_capacity=not args.no_consumable_capacity,
        )
        world, notes = _from_files(args.filename, caps, args.driver)
        now = timestamp(args.now) if args.now else time.time()
        if args.now and not now:
            raise FatalError(f"--now: {args.now!r} is not an RFC 3339 time such as 2026-01-01T00:00:00Z")
    else:
        world, now = _from_cluster(Kube.from_kubeconfig(args.kubeconfig), args.driver), time.time()
    decision = decide(world, policy, now)
    decision = replace(decision, notes=(*notes, *decision.notes))
    sys.stdout.write(dump(decision.to_json(), "json") if args.output == "json" else _table(decision))
    return 0
