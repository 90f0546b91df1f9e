"""Generated scenarios: a node, claims already allocated on it, and the claim(s) of one new pod. Pure.

``generate(seed, n, inventories)`` is deterministic: scenario *i* depends only on ``(seed, i)``. Claims
allocated beforehand are pinned to one device each by CEL selectors (index, profile, placement, replica),
chosen so that together they fit (checked by ``checker``, not by our allocator): exclusive devices once,
shared counters and consumable capacity within bounds. They tolerate every taint (``TOLERATE_ALL``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dra_driver.inventory import Inventory
from e2e.differential import checker, machines, shapes
from e2e.differential.machines import DRIVER, Machine, attr

Obj = dict[str, Any]
A = shapes.A
# The device taint eviction controller honours only tolerations that name NoExecute (1.37.2), so an
# effect-less ``operator: Exists`` would let the pod be evicted right after allocation.
TOLERATE_ALL = [{"operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists", "effect": "NoExecute"}]


@dataclass(frozen=True)
class Scenario:
    index: int
    family: str
    machine: Machine
    pre: tuple[Obj, ...]  # spec.devices of claims allocated before, one pod each
    new: tuple[Obj, ...]  # spec.devices of the new pod's claims

    def describe(self) -> str:
        return f"#{self.index} {self.family} on {self.machine.describe()}, {len(self.pre)} allocated before"


def pinned(device: checker.Obj, rng: random.Random) -> Obj:
    """A request that can only be satisfied by ``device`` (of this node)."""
    kind = str(attr(device, "type"))
    selectors = [f"{A}.index == {attr(device, 'index')}"]
    extra: Obj = {"tolerations": TOLERATE_ALL}
    if kind == "mig":
        selectors += [f'{A}.profile == "{attr(device, "profile")}"', f"{A}.placement == {attr(device, 'placement')}"]
    elif kind == "timeslice":
        selectors.append(f"{A}.replica == {attr(device, 'replica')}")
    elif kind == "shared":
        extra["capacity"] = {"requests": shapes.capacity_requests(rng)}
    return shapes.claim(shapes.request("pre", kind, 1, selectors, extra))


def _share(device: checker.Obj, request: Obj) -> Obj | None:
    """The allocation result a share of ``device`` would get (None: the request is off the policy)."""
    wanted = ((request.get("capacity") or {}).get("requests")) or {}
    amounts = checker.consumed(wanted, device.get("capacity") or {})
    if amounts is None:
        return None
    return {"consumedCapacity": {k: f"{v}n" for k, v in amounts.items()}, "shareID": "x"}


def pre_allocated(
    rng: random.Random, m: Machine, inventories: Mapping[str, Inventory], wanted: int, kinds: tuple[str, ...] = ()
) -> tuple[Obj, ...]:
    objs = machines.slices(m, inventories, "n")
    node = checker.node_devices(objs)
    candidates = [d for d in node.devices.values() if not kinds or attr(d, "type") in kinds]
    if kinds == ("mig",) and candidates:  # exhaust a few GPUs rather than nibble at all of them
        gpus = sorted({attr(d, "index") for d in candidates})
        focus = set(rng.sample(gpus, min(len(gpus), rng.randint(1, 2))))
        candidates = [d for d in candidates if attr(d, "index") in focus]
    rng.shuffle(candidates)
    held = checker.Holdings()
    out: list[Obj] = []
    for device in candidates:
        if len(out) >= wanted:
            break
        spec = pinned(device, rng)
        result: Obj = {"driver": DRIVER, "pool": "n", "device": device["name"]}
        if device.get("allowMultipleAllocations"):
            share = _share(device, spec["requests"][0]["exactly"])
            if share is None:
                continue
            result |= share
        trial = checker.Holdings(held.exclusive.copy(), {k: list(v) for k, v in held.shares.items()})
        trial.add(result)
        if checker.resource_violations(node, trial):
            continue
        held = trial
        out.append(spec)
    return tuple(out)


PRE_KINDS = {
    "mig-exhaustion": (("mig",), (2, 12)),
    "timeslice": (("timeslice", "gpu"), (0, 6)),
    "shared-capacity": (("shared",), (1, 5)),
}


def scenario(seed: int, index: int, inventories: Mapping[str, Inventory]) -> Scenario:
    rng = random.Random(f"{seed}/{index}")
    names = list(shapes.FAMILIES)
    family = rng.choices(names, weights=[shapes.FAMILIES[n][1] for n in names])[0]
    shape, _, theme = shapes.FAMILIES[family]
    if theme is None and rng.random() < 0.3:
        theme = "mig"
    m = machines.machine(rng, inventories, theme)
    if family == "taints" or rng.random() < 0.1:
        m = machines.with_taints(rng, m, inventories, rng.randint(1, 6))
    kinds, (low, high) = PRE_KINDS.get(family, ((), (0, 4)))
    pre = pre_allocated(rng, m, inventories, rng.randint(low, high), kinds)
    new = shape(rng, machines.devices(m, inventories))
    return Scenario(index, family, m, pre, tuple(new))


def generate(seed: int, n: int, inventories: Mapping[str, Inventory]) -> list[Scenario]:
    return [scenario(seed, i, inventories) for i in range(n)]
