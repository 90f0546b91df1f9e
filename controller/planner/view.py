"""What each node's published slices say about its GPUs: facts, current mode, devices. Pure.

The controller has no NVML: it rebuilds each GPU's ``dra_driver.inventory.Gpu`` from the attributes and
capacities this driver publishes (every device of a GPU carries its product, index, minor, PCI address,
versions), and the MIG profile table from ``catalogue`` (a GPU's slices in another mode do not carry it).
The current mode is read from the device types published for the GPU: ``timeslice`` x N, ``shared``,
``mig`` (a static layout when its devices consume no counters), else ``whole``. A GPU that publishes no
device (unhealthy, or static MIG without instances) is not seen and never changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api.partitioning import GpuMode, Mig, Shared, TimeSlice, Whole
from controller.planner import catalogue
from dra_driver.gpu_facts import full_size_profile
from dra_driver.inventory import Gpu
from dra_driver.resourceslice import quantity
from dra_driver.slices.devices import BRANDS
from dra_driver.structured.slicememo import version_key

Obj = Mapping[str, Any]
_BRAND_CODES = {name: code for code, name in BRANDS.items()}


@dataclass(frozen=True)
class GpuView:
    node: str
    gpu: Gpu  # rebuilt facts; MIG mode off and no MIG devices (candidates set those)
    mode: GpuMode  # as published now
    layout: tuple[str, ...]  # the static MIG layout published (profiles by placement), else ()
    devices: frozenset[str]  # names of the devices published for it
    counter_sets: frozenset[str]  # counter sets only its devices consume
    taints: tuple[Obj, ...]  # v1 taints on its devices (carried over to a candidate mode)
    mig_on: bool = False  # MIG mode is on (mig mode, or a whole GPU advertising its full-size MIG instance)

    @property
    def mode_text(self) -> str:
        return f"mig[{','.join(self.layout)}]" if self.layout else str(self.mode)


@dataclass(frozen=True)
class NodeView:
    name: str
    driver: str
    pool: str
    generation: int
    slices: tuple[Obj, ...]  # the pool's v1 slices at its highest generation
    gpus: tuple[GpuView, ...]  # by index
    driver_version: str
    cuda_driver_version: str

    def gpu(self, uuid: str) -> GpuView | None:
        return next((g for g in self.gpus if g.gpu.uuid == uuid), None)


def _mapping(value: object) -> bool:
    return isinstance(value, (dict, Mapping))  # a decoded dict matches first, without the ABC's check


def attributes(device: Obj, driver: str) -> dict[str, Any]:
    """A v1 device's attribute values by name (the driver's own domain unqualified)."""
    out: dict[str, Any] = {}
    for name, value in (device.get("attributes") or {}).items():
        key = name.removeprefix(f"{driver}/")
        out[key] = next(iter(value.values())) if _mapping(value) and value else None
    return out


def _capacity(device: Obj, name: str) -> int | None:
    raw = ((device.get("capacity") or {}).get(name) or {}).get("value")
    try:
        return quantity.parse(str(raw)) if raw is not None else None
    except ValueError:
        return None


class _Raw:
    """One attribute value at a time from a v1 device, without decoding them all."""

    def __init__(self, device: Obj, driver: str) -> None:
        self.attrs = device.get("attributes") or {}
        self.driver = driver

    def get(self, name: str) -> Any:
        value = self.attrs.get(name) or self.attrs.get(f"{self.driver}/{name}")
        return next(iter(value.values())) if _mapping(value) and value else None


def gpu_key(attrs: Mapping[str, Any] | _Raw) -> str | None:
    """The GPU a device belongs to: a MIG device's parent, else the device's own UUID."""
    key = attrs.get("parentUUID") or attrs.get("uuid")
    return str(key) if key else None


def _cc(version: str) -> str:
    """ "8.0.0" (published semver) -> "8.0" (NVML's form; semver() maps it back to 8.0.0)."""
    return ".".join(version.split(".")[:2])


def _gpu(uuid: str, device: Obj, attrs: Mapping[str, Any]) -> Gpu:
    """The GPU's facts from one of its devices (a whole, replica or shared one where there is one)."""
    product = str(attrs.get("productName", ""))
    memory, sms = catalogue.totals(product) or (
        _capacity(device, "memory") or 0,
        _capacity(device, "multiprocessors") or 0,
    )
    profiles = catalogue.mig_profiles(product)
    return Gpu(
        index=int(attrs.get("index", 0)),
        minor=int(attrs.get("minor", attrs.get("index", 0))),
        uuid=uuid,
        serial=None,
        product_name=product,
        brand=_BRAND_CODES.get(str(attrs.get("brand", "")), 2),
        architecture=str(attrs.get("architecture", "")),
        cuda_compute_capability=_cc(str(attrs.get("cudaComputeCapability", "0.0"))),
        memory_bytes=memory,
        multiprocessors=sms,
        pci_bus_id=str(attrs.get("resource.kubernetes.io/pciBusID", "")),
        pci_device_id=0,
        numa_node=attrs.get("resource.kubernetes.io/numaNode"),
        pcie_root=attrs.get("resource.kubernetes.io/pcieRoot"),
        compute_mode=0,
        mig_capable=bool(profiles),
        mig_enabled=False,
        mig_pending=False,
        mig_profiles=profiles,
        gpu_instances=(),
        mig_devices=(),
    )


def _full_size_instance(gpu: Gpu, whole: Obj) -> bool:
    """A whole GPU in MIG mode advertises its full-size MIG instance (less memory than MIG off)."""
    full = full_size_profile(gpu)
    return full is not None and _capacity(whole, "memory") == full.memory_bytes


def _mode(devices: Sequence[tuple[Obj, _Raw, Any]]) -> tuple[GpuMode, tuple[str, ...]]:
    """From one GPU's devices as (device, its attributes, its type)."""
    types = [t for _, _, t in devices]
    if "timeslice" in types:
        return TimeSlice(types.count("timeslice")), ()
    if "shared" in types:
        return Shared(), ()
    migs = [(d, a) for d, a, t in devices if t == "mig"]
    if migs:
        if any(d.get("consumesCounters") for d, _ in migs):
            return Mig(), ()
        ordered = sorted(migs, key=lambda da: int(da[1].get("placement") or 0))
        return Mig(), tuple(str(a.get("profile")) for _, a in ordered)
    return Whole(), ()


def _newest(slices: Iterable[Obj], driver: str) -> dict[tuple[str, str], list[Obj]]:
    """This driver's node-local pools: (node, pool) -> slices of the highest generation."""
    pools: dict[tuple[str, str], list[Obj]] = {}
    for s in slices:
        spec = s.get("spec") or {}
        if spec.get("driver") != driver or not spec.get("nodeName"):
            continue
        pools.setdefault((str(spec["nodeName"]), str(spec["pool"]["name"])), []).append(s)
    for key, members in pools.items():
        top = max(int(m["spec"]["pool"].get("generation", 0)) for m in members)
        pools[key] = [m for m in members if int(m["spec"]["pool"].get("generation", 0)) == top]
    return pools


class ViewMemo:
    """Node views kept between calls by a long-lived caller (the mode controller): a node's view is rebuilt only
    when one of its slices has another uid or resourceVersion. Slices without both are never remembered."""

    def __init__(self) -> None:
        self._views: dict[tuple[object, ...], NodeView] = {}
        self.builds = 0  # views built, not found (for tests)

    def key(self, driver: str, node: str, pool: str, members: Sequence[Obj]) -> tuple[object, ...] | None:
        versions = [version_key(m) for m in members]
        if None in versions:
            return None
        return (driver, node, pool, *sorted(v for v in versions if v is not None))

    def get(self, key: tuple[object, ...]) -> NodeView | None:
        return self._views.get(key)

    def keep(self, views: Mapping[tuple[object, ...], NodeView]) -> None:
        """The views of this call, and no other (nodes gone or changed are forgotten)."""
        self.builds += sum(1 for k in views if k not in self._views)
        self._views = dict(views)


def node_views(slices: Iterable[Obj], driver: str, memo: ViewMemo | None = None) -> dict[str, NodeView]:
    """One view per node that publishes a pool of ``driver`` (its first pool by name, if several). With ``memo``,
    a node whose slices are unchanged since the last call gets the view built then."""
    views: dict[str, NodeView] = {}
    kept: dict[tuple[object, ...], NodeView] = {}
    for (node, pool), members in sorted(_newest(slices, driver).items()):
        if node in views:
            continue
        key = memo.key(driver, node, pool, members) if memo is not None else None
        view = memo.get(key) if memo is not None and key is not None else None
        if view is None:
            view = _view(node, pool, members, driver)
        if key is not None:
            kept[key] = view
        views[node] = view
    if memo is not None:
        memo.keep(kept)
    return views


def _view(node: str, pool: str, members: Sequence[Obj], driver: str) -> NodeView:
    by_gpu: dict[str, list[tuple[Obj, _Raw, Any]]] = {}  # (device, its attributes, its type)
    for s in members:
        for d in s["spec"].get("devices") or ():
            if (key := gpu_key(raw := _Raw(d, driver))) is not None:
                by_gpu.setdefault(key, []).append((d, raw, raw.get("type")))
    gpus = []
    first: dict[str, Any] = {}
    for uuid, devices in by_gpu.items():
        rep = next((d for d, _, t in devices if t in ("gpu", "timeslice", "shared")), devices[0][0])
        facts = attributes(rep, driver)
        first = first or facts
        mode, layout = _mode(devices)
        sets = {c["counterSet"] for d, _, _ in devices for c in d.get("consumesCounters") or ()}
        taints = next((tuple(d["taints"]) for d, _, _ in devices if d.get("taints")), ())
        names = frozenset(str(d["name"]) for d, _, _ in devices)
        gpu = _gpu(uuid, rep, facts)
        mig_on = isinstance(mode, Mig) or (facts.get("type") == "gpu" and _full_size_instance(gpu, rep))
        gpus.append(GpuView(node, gpu, mode, layout, names, frozenset(sets), taints, mig_on))
    return NodeView(
        name=node,
        driver=driver,
        pool=pool,
        generation=int(members[0]["spec"]["pool"].get("generation", 0)),
        slices=tuple(members),
        gpus=tuple(sorted(gpus, key=lambda g: g.gpu.index)),
        driver_version=str((first or {}).get("driverVersion", "0.0.0")),
        cuda_driver_version=str((first or {}).get("cudaDriverVersion", "0.0.0")),
    )
