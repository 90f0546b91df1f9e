"""``dra-gpu slices`` and ``dra-gpu classes``: what the driver would publish, without publishing it."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml

from api.partitioning import PartitioningConfig, load_config, parse_mode
from cli import nvml_source, output
from dra_driver.classes import DEFAULT_DRIVER, device_classes
from dra_driver.errors import ConfigError
from dra_driver.k8s import Kube
from dra_driver.nvml.discovery import discover
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.probe import probe
from dra_driver.resourceslice.render import render
from dra_driver.slices.builder import build_pool

WITHOUT = {
    "partitionable-devices": "partitionable_devices",
    "counters-own-slice": "counters_in_own_slice",
    "consumable-capacity": "consumable_capacity",
    "extended-resource-name": "extended_resource_name",
}


def _add_capability_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kubeconfig", type=Path, help="probe this cluster's capabilities (default: a current 1.37 cluster)"
    )
    p.add_argument(
        "--api-version", choices=["v1", "v1beta2", "v1beta1"], help="render for this resource.k8s.io version"
    )
    p.add_argument(
        "--without",
        action="append",
        default=[],
        choices=sorted(WITHOUT),
        help="render as for a cluster without this feature (repeatable)",
    )
    p.add_argument("--driver", default=DEFAULT_DRIVER)
    p.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("slices", help="render the ResourceSlices for this node's GPUs (publishes nothing)")
    nvml_source.add_arguments(p)
    _add_capability_args(p)
    p.add_argument("--mode", help="mode of every GPU: whole, mig, timeslice:N or shared")
    p.add_argument("--config", type=Path, help="a PartitioningConfig file choosing modes per node/GPU")
    p.add_argument("--node", default="node-0", help="node name (pool name) to render for")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="node label for --config")
    p.set_defaults(func=run_slices)
    c = sub.add_parser("classes", help="print the DeviceClasses this driver ships")
    _add_capability_args(c)
    c.set_defaults(func=run_classes)


def capabilities(args: argparse.Namespace) -> Capabilities:
    caps = probe(Kube.from_kubeconfig(args.kubeconfig)) if args.kubeconfig else Capabilities()
    changes: dict[str, object] = {WITHOUT[w]: False for w in args.without}
    if args.api_version:
        changes["api_version"] = args.api_version
    return dataclasses.replace(caps, **changes)  # type: ignore[arg-type]


def _config(args: argparse.Namespace) -> PartitioningConfig:
    if args.mode and args.config:
        raise ConfigError("--mode", "give --mode or --config, not both")
    if args.mode:
        return PartitioningConfig(default=parse_mode(args.mode, "--mode"))
    if args.config:
        return load_config(args.config.read_text())
    return PartitioningConfig()


def _labels(items: list[str]) -> dict[str, str]:
    labels = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--label", f"expected KEY=VALUE, got {item!r}")
        labels[key] = value
    return labels


def run_slices(args: argparse.Namespace) -> int:
    caps = capabilities(args)
    config = _config(args)
    labels = _labels(args.label)
    with nvml_source.open_nvml(args) as nvml:
        inv = discover(nvml, nvml_source.sysfs_root(args))
    modes = {g.index: config.mode_for(labels, g.index, g.uuid, g.product_name) for g in inv.gpus}
    pool = build_pool(inv, modes, caps, args.driver, args.node)
    for note in pool.notes:
        print(f"# degraded: {note}", file=sys.stderr)
    objs = render(pool, 1, caps.api_version)
    if args.output == "yaml":
        sys.stdout.write(yaml.safe_dump_all(objs, sort_keys=False))
    else:
        sys.stdout.write(output.dump({"apiVersion": "v1", "kind": "List", "items": objs}, "json"))
    return 0


def run_classes(args: argparse.Namespace) -> int:
    classes = device_classes(args.driver, capabilities(args))
    if args.output == "yaml":
        sys.stdout.write(yaml.safe_dump_all(classes, sort_keys=False))
    else:
        sys.stdout.write(output.dump({"apiVersion": "v1", "kind": "List", "items": classes}, "json"))
    return 0
