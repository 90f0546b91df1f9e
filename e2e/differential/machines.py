"""A scenario's simulated node: machine profile, a mode per GPU, capabilities, device taints. Pure.

``slices(machine, inventories, node)`` renders the ResourceSlices the driver would publish for it (through the
driver's own ``build_pool`` and ``render``), with the machine's taints added to the named devices.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.partitioning import GpuMode, Mig, Shared, TimeSlice, Whole
from dra_driver.inventory import Inventory
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.render import render
from dra_driver.slices.builder import build_pool

DRIVER = "gpu.dra-driver.dev"
Obj = dict[str, Any]

PROFILES = {"single-a100": 3, "a100-80gb-a30": 3, "l4": 2, "dgx-a100": 2, "dgx-h100": 2}
THEMES = ("whole", "mig", "timeslice", "shared", "mixed")
TAINT_KEY = "gpu.dra-driver.dev/maintenance"
TAINTS: tuple[Obj, ...] = (
    {"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"},
    {"key": TAINT_KEY, "value": "true", "effect": "NoExecute"},
    {"key": "gpu.dra-driver.dev/degraded", "effect": "None"},
)


@dataclass(frozen=True)
class Machine:
    profile: str
    theme: str
    modes: tuple[GpuMode, ...]  # by GPU index
    partitionable: bool = True  # False: a cluster without shared counters (Capabilities variant)
    taints: tuple[tuple[str, Obj], ...] = ()  # (device name, taint)

    @property
    def caps(self) -> Capabilities:
        return Capabilities(partitionable_devices=self.partitionable)

    def describe(self) -> str:
        modes = ",".join(str(m) for m in self.modes)
        extra = "" if self.partitionable else " no-counters"
        return f"{self.profile} [{modes}]{extra}{' tainted' if self.taints else ''}"


def _mode(rng: random.Random, theme: str) -> GpuMode:
    if theme == "mixed":
        theme = rng.choice(THEMES[:4])
    match theme:
        case "whole":
            return Whole()
        case "mig":
            return Mig()
        case "timeslice":
            return TimeSlice(rng.randint(2, 6))
        case _:
            return Shared()


def machine(rng: random.Random, inventories: Mapping[str, Inventory], theme: str | None = None) -> Machine:
    profile = rng.choices(list(PROFILES), weights=list(PROFILES.values()))[0]
    theme = theme or rng.choice(THEMES)
    gpus = inventories[profile].gpus
    if theme == "timeslice" and rng.random() < 0.5:
        modes: tuple[GpuMode, ...] = (TimeSlice(rng.randint(2, 6)),) * len(gpus)  # one replica count everywhere
    else:
        modes = tuple(_mode(rng, theme) for _ in gpus)
    partitionable = not (theme in ("whole", "timeslice") and rng.random() < 0.3)
    return Machine(profile, theme, modes, partitionable)


def with_taints(rng: random.Random, m: Machine, inventories: Mapping[str, Inventory], how_many: int) -> Machine:
    names = [d["name"] for d in devices(m, inventories)]
    chosen = rng.sample(names, min(how_many, len(names)))
    return Machine(m.profile, m.theme, m.modes, m.partitionable, tuple((n, rng.choice(TAINTS)) for n in chosen))


def slices(m: Machine, inventories: Mapping[str, Inventory], node: str, owner: Obj | None = None) -> list[Obj]:
    inv = inventories[m.profile]
    pool = build_pool(inv, {g.index: mode for g, mode in zip(inv.gpus, m.modes, strict=True)}, m.caps, DRIVER, node)
    objs = render(pool, 1, "v1", owner)
    taints: dict[str, list[Obj]] = {}
    for name, taint in m.taints:
        taints.setdefault(name, []).append(taint)
    for obj in objs:
        for d in obj["spec"].get("devices") or ():
            if d["name"] in taints:
                d["taints"] = taints[d["name"]]
    return objs


def devices(m: Machine, inventories: Mapping[str, Inventory]) -> list[Obj]:
    """The machine's devices in slice order (node name does not matter for them)."""
    return [d for s in slices(m, inventories, "n") for d in s["spec"].get("devices") or ()]


def attr(device: Mapping[str, Any], name: str) -> Any:
    raw = (device.get("attributes") or {}).get(name) or {}
    return next(iter(raw.values()), None)
