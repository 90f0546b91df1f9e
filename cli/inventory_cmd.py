"""``dra-gpu inventory``: what NVML reports about this node's GPUs."""

from __future__ import annotations

import argparse
import sys

from cli import nvml_source, output
from dra_driver.inventory import Gpu, Inventory, inventory_json
from dra_driver.nvml.discovery import discover

GIB = 1024**3


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("inventory", help="discover the node's GPUs through NVML (read-only)")
    nvml_source.add_arguments(p)
    p.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with nvml_source.open_nvml(args) as nvml:
        inv = discover(nvml, nvml_source.sysfs_root(args))
    if args.output == "table":
        sys.stdout.write(render_table(inv))
    else:
        sys.stdout.write(output.dump(inventory_json(inv), args.output))
    return 0


def _mig_state(g: Gpu) -> str:
    if not g.mig_capable:
        return "-"
    state = "enabled" if g.mig_enabled else "disabled"
    return state + " (change pending reset)" if g.mig_pending else state


def _profiles_line(g: Gpu) -> str:
    parts = []
    for p in g.mig_profiles:
        starts = ",".join(str(x.start) for x in p.placements)
        parts.append(f"{p.name}@{starts}")
    return "    MIG profiles (name@placement starts): " + "  ".join(parts)


def render_table(inv: Inventory) -> str:
    rows = [
        [
            g.index,
            g.minor,
            g.product_name,
            f"{g.memory_bytes / GIB:.0f} GiB",
            g.architecture,
            g.pci_bus_id,
            _mig_state(g),
            len(g.mig_devices),
            g.uuid,
        ]
        for g in inv.gpus
    ]
    text = f"Driver {inv.driver_version}, CUDA {inv.cuda_driver_version}, {len(inv.gpus)} GPU(s)\n"
    text += output.table(["GPU", "MINOR", "PRODUCT", "MEMORY", "ARCH", "PCI", "MIG", "MIG DEVICES", "UUID"], rows)
    seen: set[str] = set()
    for g in inv.gpus:
        if g.mig_profiles and g.product_name not in seen:
            seen.add(g.product_name)
            text += f"{g.product_name}:\n{_profiles_line(g)}\n"
    for u in inv.unhealthy:
        text += f"GPU {u.index} UNHEALTHY: {u.reason}\n"
    return text
