"""Shapes of the new claim(s) a scenario asks for: one function per family. Pure.

Each family gets the scenario's random generator and the node's devices (rendered, in slice order) and
returns the ``spec.devices`` of one or more claims. Families lean towards devices the node has, so that
both verdicts are common, but also ask for what is missing or taken.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from dra_driver.classes import MIG_PROFILES, class_name
from dra_driver.slices.devices import label
from e2e.differential.machines import DRIVER, TAINT_KEY, attr

Obj = dict[str, Any]
A = f'device.attributes["{DRIVER}"]'
C = f'device.capacity["{DRIVER}"]'
TYPES = ("gpu", "mig", "timeslice", "shared")


def request(name: str, kind: str, count: int = 1, selectors: list[str] | None = None, extra: Obj | None = None) -> Obj:
    exactly: Obj = {"deviceClassName": class_name(kind), "count": count, **(extra or {})}
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": e}} for e in selectors]
    if exactly.get("allocationMode") == "All":
        exactly.pop("count")
    return {"name": name, "exactly": exactly}


def claim(*requests: Obj, constraints: list[Obj] | None = None) -> Obj:
    out: Obj = {"requests": list(requests)}
    if constraints:
        out["constraints"] = constraints
    return out


def _types(devices: list[Obj]) -> list[str]:
    present = sorted({str(attr(d, "type")) for d in devices})
    return present or ["gpu"]


def _kind(rng: random.Random, devices: list[Obj]) -> str:
    return rng.choice(_types(devices)) if rng.random() < 0.85 else rng.choice(TYPES)


def _profiles(devices: list[Obj]) -> list[str]:
    return sorted({str(attr(d, "profile")) for d in devices if attr(d, "profile")}) or ["1g.5gb"]


def _profile(rng: random.Random, devices: list[Obj]) -> str:
    return rng.choice(_profiles(devices)) if rng.random() < 0.9 else rng.choice(MIG_PROFILES)


def _gpus(devices: list[Obj]) -> int:
    return len({attr(d, "index") for d in devices}) or 1


def class_only(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    if rng.random() < 0.4:
        return [claim(request("r", f"mig-{label(_profile(rng, devices))}"))]
    return [claim(request("r", _kind(rng, devices)))]


def cel_product(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    products = [*sorted({str(attr(d, "productName")) for d in devices}), "NVIDIA H100 80GB HBM3", "NVIDIA L4"]
    product = rng.choice(products)
    sel = f'{A}.productName == "{product}"' if rng.random() < 0.7 else f'{A}.productName.startsWith("NVIDIA A")'
    return [claim(request("r", _kind(rng, devices), rng.randint(1, 2), [sel]))]


def cel_memory(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    gi = rng.choice([4, 5, 10, 20, 23, 24, 40, 45, 79, 80, 100])
    op = rng.choice([">= 0", "> 0", "< 0"])
    sel = f'{C}.memory.compareTo(quantity("{gi}Gi")) {op}'
    if rng.random() < 0.3:
        sel = f'{C}.memory.isGreaterThan(quantity("{gi * 1024}Mi"))'
    return [claim(request("r", _kind(rng, devices), rng.randint(1, 2), [sel]))]


def cel_profile(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    a, b = _profile(rng, devices), _profile(rng, devices)
    sel = f'{A}.profile == "{a}"' if rng.random() < 0.6 else f'{A}.profile in ["{a}", "{b}"]'
    return [claim(request("r", "mig", rng.randint(1, 3), [sel]))]


def cel_compute_capability(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    version = rng.choice(["8.0.0", "8.6.0", "8.9.0", "9.0.0"])
    sel = rng.choice(
        [
            f'{A}.cudaComputeCapability.isGreaterThan(semver("{version}"))',
            f'{A}.cudaComputeCapability.compareTo(semver("{version}")) >= 0',
            f'{A}.cudaComputeCapability.isLessThan(semver("{version}"))',
            f'{A}.cudaComputeCapability == semver("{version}")',
        ]
    )
    return [claim(request("r", _kind(rng, devices), rng.randint(1, 2), [sel]))]


def cel_index(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    n = _gpus(devices)
    k = rng.randrange(n + 1)
    sel = rng.choice([f"{A}.index == {k}", f"{A}.index < {k}", f"{A}.index in [{k}, {(k + 2) % (n + 1)}]"])
    return [claim(request("r", _kind(rng, devices), rng.randint(1, 2), [sel]))]


def count(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    kind = _kind(rng, devices)
    matching = sum(1 for d in devices if attr(d, "type") == kind)
    return [claim(request("r", kind, rng.randint(2, max(3, min(matching + 2, 12)))))]


def all_mode(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    kind = _kind(rng, devices)
    selectors = [f"{A}.index < {rng.randint(1, _gpus(devices))}"] if rng.random() < 0.5 else None
    if kind == "mig":
        selectors = [f'{A}.profile == "{_profile(rng, devices)}"', *(selectors or [])]
    return [claim(request("r", kind, selectors=selectors, extra={"allocationMode": "All"}))]


def first_available(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    subs = []
    for i in range(rng.randint(2, 3)):
        if rng.random() < 0.5 and "mig" in _types(devices):
            kind, n = f"mig-{label(_profile(rng, devices))}", rng.randint(1, 3)
        else:
            kind, n = _kind(rng, devices), rng.randint(1, 4)
        subs.append({"name": f"s{i}", "deviceClassName": class_name(kind), "count": n})
    return [claim({"name": "r", "firstAvailable": subs})]


def match_attribute(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    attribute = rng.choice(["parentUUID", "index", "productName", "uuid"])
    kinds = [_kind(rng, devices), _kind(rng, devices)]
    if attribute == "parentUUID":
        kinds = ["mig", "mig"]
    scope = rng.choice([[], ["a", "b"], ["a"]])
    constraint: Obj = {"matchAttribute": f"{DRIVER}/{attribute}"}
    if scope:
        constraint["requests"] = scope
    return [claim(request("a", kinds[0], rng.randint(1, 2)), request("b", kinds[1]), constraints=[constraint])]


def distinct_attribute(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    kind = _kind(rng, devices)
    attributes = ["index", "productName", "uuid"] + (["parentUUID", "placement"] if kind == "mig" else [])
    constraint = {"distinctAttribute": f"{DRIVER}/{rng.choice(attributes)}"}
    if rng.random() < 0.1:
        constraint["distinctAttribute"] = f"{DRIVER}/replica"  # only time-slice replicas have it
    return [claim(request("r", kind, rng.randint(2, 3)), constraints=[constraint])]


def mig_profiles(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    """After the node's MIG devices were partly taken: a profile, several, or the whole GPU."""
    choice = rng.random()
    if choice < 0.25:
        return [claim(request("r", "gpu", rng.randint(1, 2)))]
    if choice < 0.5:
        return [claim(request("a", f"mig-{label(_profile(rng, devices))}"), request("b", "mig", rng.randint(1, 2)))]
    return [claim(request("r", f"mig-{label(_profile(rng, devices))}", rng.randint(1, 3)))]


def timeslice(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    replicas = request("r", "timeslice", rng.randint(1, 6))
    if rng.random() < 0.3:
        return [claim(replicas, request("w", "gpu"))]
    return [claim(replicas)]


def capacity_requests(rng: random.Random, device_memory_gi: int = 24) -> Obj:
    requests: Obj = {}
    if rng.random() < 0.8:
        mi = rng.choice([256, 512, 1000, 1024, 3000, 4096, 10240, 20480, device_memory_gi * 1024])
        requests["memory"] = f"{mi}Mi"
    if rng.random() < 0.7:
        requests["compute"] = str(rng.choice([1, 10, 25, 33, 50, 75, 100, 101]))
    return requests  # a shared device's consumable capacities are memory and compute


def shared(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    caps = {"capacity": {"requests": r}} if (r := capacity_requests(rng)) else {}
    first = request("r", "shared", rng.randint(1, 2), extra=caps)
    if rng.random() < 0.25:
        second = request("s", "shared", 1, extra={"capacity": {"requests": capacity_requests(rng)}})
        return [claim(first, second)]
    return [claim(first)]


def tainted(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    tolerations = rng.choice(
        [
            [],
            [{"key": TAINT_KEY, "operator": "Exists"}],
            [{"key": TAINT_KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
            [{"operator": "Exists"}],
        ]
    )
    extra = {"tolerations": tolerations} if tolerations else {}
    return [claim(request("r", _kind(rng, devices), rng.randint(1, 3), extra=extra))]


def two_claims(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    second = count(rng, devices) if rng.random() < 0.3 else class_only(rng, devices)
    return [*class_only(rng, devices), *second]


def selector_error(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    """A selector that reads an attribute some devices lack: a CEL runtime error if the search reaches one."""
    missing = rng.choice(["replica", "profile", "placement"])
    return [claim(request("r", _kind(rng, devices), 1, [f"{A}.{missing} == 0"]))]


def admin_access(rng: random.Random, devices: list[Obj]) -> list[Obj]:
    """Admin access: devices in use by other claims are allowed (needs the namespace's admin-access label)."""
    first = request("r", _kind(rng, devices), rng.randint(1, 2), extra={"adminAccess": True})
    if rng.random() < 0.3:
        return [claim(first, request("s", _kind(rng, devices)))]
    return [claim(first)]


Family = Callable[[random.Random, list[Obj]], list[Obj]]
FAMILIES: dict[str, tuple[Family, int, str | None]] = {  # name: (shape, weight, machine theme or None = any)
    "class-only": (class_only, 8, None),
    "cel-productName": (cel_product, 6, None),
    "cel-memory": (cel_memory, 6, None),
    "cel-profile": (cel_profile, 6, "mig"),
    "cel-computeCapability": (cel_compute_capability, 5, None),
    "cel-index": (cel_index, 5, None),
    "count": (count, 7, None),
    "all": (all_mode, 6, None),
    "firstAvailable": (first_available, 7, None),
    "matchAttribute": (match_attribute, 7, None),
    "distinctAttribute": (distinct_attribute, 6, None),
    "mig-exhaustion": (mig_profiles, 10, "mig"),
    "timeslice": (timeslice, 6, "timeslice"),
    "shared-capacity": (shared, 7, "shared"),
    "taints": (tainted, 5, None),
    "two-claims": (two_claims, 4, None),
    "selector-error": (selector_error, 2, None),
    "admin-access": (admin_access, 4, None),
}
