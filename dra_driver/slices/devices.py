"""Devices of one GPU in each mode: names, attributes, capacities, counters. Pure.

Names (DNS labels, stable): ``gpu-<minor>``, ``gpu-<minor>-mig-<profile>-<start>`` (profile with
``.``/``+`` as ``-``, e.g. ``gpu-0-mig-1g-5gb-3``), ``gpu-<minor>-ts-<k>``, ``gpu-<minor>-shared``.
"""

from __future__ import annotations

from dra_driver.gpu_facts import full_size_profile, whole_gpu_resources
from dra_driver.inventory import Gpu, Inventory, MigDevice, MigProfile
from dra_driver.resourceslice import quantity
from dra_driver.resourceslice.model import (
    Attr,
    Capacity,
    CounterConsumption,
    CounterSet,
    Device,
    RequestPolicy,
    Version,
)

STANDARD = "resource.kubernetes.io"
BRANDS = {2: "Tesla", 14: "NVIDIA", 1: "Quadro", 5: "GeForce"}


def semver(text: str) -> Version:
    """NVML versions as semver: "580.95.05" -> 580.95.5, "8.0" -> 8.0.0."""
    parts = [str(int(p)) for p in text.split(".")[:3]]
    return Version(".".join(parts + ["0"] * (3 - len(parts))))


def label(profile: str) -> str:
    return profile.replace(".", "-").replace("+", "-").lower()


def whole_name(gpu: Gpu) -> str:
    return f"gpu-{gpu.minor}"


def mig_name(gpu: Gpu, profile: str, start: int) -> str:
    return f"gpu-{gpu.minor}-mig-{label(profile)}-{start}"


def counter_set_name(gpu: Gpu) -> str:
    return f"gpu-{gpu.minor}"


def _gpu_attributes(inv: Inventory, gpu: Gpu, kind: str) -> list[tuple[str, Attr]]:
    attrs: list[tuple[str, Attr]] = [
        ("type", kind),
        ("productName", gpu.product_name),
        ("brand", BRANDS.get(gpu.brand, "NVIDIA")),
        ("architecture", gpu.architecture),
        ("cudaComputeCapability", semver(gpu.cuda_compute_capability)),
        ("driverVersion", semver(inv.driver_version)),
        ("cudaDriverVersion", semver(inv.cuda_driver_version)),
        ("index", gpu.index),
        ("minor", gpu.minor),
        (f"{STANDARD}/pciBusID", gpu.pci_bus_id),
    ]
    if gpu.pcie_root is not None:
        attrs.append((f"{STANDARD}/pcieRoot", gpu.pcie_root))
    if gpu.numa_node is not None:
        attrs.append((f"{STANDARD}/numaNode", gpu.numa_node))
    return attrs


def _gpu_capacity(gpu: Gpu) -> tuple[tuple[str, Capacity], ...]:
    return (
        ("memory", Capacity(quantity.binary(gpu.memory_bytes))),
        ("multiprocessors", Capacity(quantity.decimal(gpu.multiprocessors))),
    )


def whole_gpu(inv: Inventory, gpu: Gpu, consumes: tuple[CounterConsumption, ...] = ()) -> Device:
    """The whole GPU, advertising what a claim of it gets: on a MIG-enabled GPU the full-size MIG instance."""
    attrs = [("uuid", gpu.uuid), *_gpu_attributes(inv, gpu, "gpu")]
    memory, multiprocessors = whole_gpu_resources(gpu)
    capacity = (
        ("memory", Capacity(quantity.binary(memory))),
        ("multiprocessors", Capacity(quantity.decimal(multiprocessors))),
    )
    return Device(whole_name(gpu), tuple(attrs), capacity, consumes)


# --- MIG -----------------------------------------------------------------------------------------

_ENGINES = (
    ("copyEngines", "copy_engines"),
    ("decoders", "decoders"),
    ("encoders", "encoders"),
    ("jpegEngines", "jpegs"),
    ("ofaEngines", "ofas"),
)


_TOTALS = (("multiprocessors", "multiprocessors"), ("memory", "memory_bytes"), ("compute-slices", "compute_slices"))


def _profile_totals(gpu: Gpu) -> dict[str, int]:
    """Counter values of a MIG GPU, from its profile table: what the full-size instance has (the whole GPU in MIG
    mode; 98 SMs and 40192 MiB on an A100-40GB, not the 108 SMs and 40 GiB of MIG off), or what one profile's
    instances together have, if that is more. Memory slices keep placements apart; these keep the sums honest."""
    full = full_size_profile(gpu)
    totals = {}
    for counter, attr in (*_TOTALS, *_ENGINES):
        most = max(getattr(p, attr) * p.instance_count for p in gpu.mig_profiles)
        totals[counter] = max(most, getattr(full, attr)) if full is not None else most
    return totals


def _counter_key(name: str) -> str:
    """Counter names are DNS labels: copyEngines -> copy-engines."""
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name)


def mig_counter_set(gpu: Gpu) -> CounterSet:
    counters = [(f"memory-slice-{i}", "1") for i in range(gpu.memory_slices)]
    for name, value in _profile_totals(gpu).items():
        if not value:
            continue  # no profile uses this engine
        key = _counter_key(name)
        counters.append((key, quantity.binary(value) if name == "memory" else quantity.decimal(value)))
    return CounterSet(counter_set_name(gpu), tuple(counters))


def _mig_consumption(gpu: Gpu, profile: MigProfile, start: int, size: int) -> CounterConsumption:
    counters = [(f"memory-slice-{i}", "1") for i in range(start, start + size)]
    counters.append(("multiprocessors", quantity.decimal(profile.multiprocessors)))
    counters.append(("memory", quantity.binary(profile.memory_bytes)))
    counters.append(("compute-slices", quantity.decimal(profile.compute_slices)))
    for name, attr in _ENGINES:
        if getattr(profile, attr):
            counters.append((_counter_key(name), quantity.decimal(getattr(profile, attr))))
    return CounterConsumption(counter_set_name(gpu), tuple(counters))


def _mig_attributes(inv: Inventory, gpu: Gpu, profile: MigProfile, start: int, size: int) -> list[tuple[str, Attr]]:
    return [
        *_gpu_attributes(inv, gpu, "mig"),
        ("parentUUID", gpu.uuid),
        ("profile", profile.name),
        ("placement", start),
        ("memorySlices", size),
    ]


def _mig_capacity(profile: MigProfile) -> tuple[tuple[str, Capacity], ...]:
    caps = [
        ("memory", Capacity(quantity.binary(profile.memory_bytes))),
        ("multiprocessors", Capacity(quantity.decimal(profile.multiprocessors))),
    ]
    caps += [(name, Capacity(quantity.decimal(getattr(profile, attr)))) for name, attr in _ENGINES]
    return tuple(caps)


def partitionable_mig(inv: Inventory, gpu: Gpu) -> tuple[tuple[Device, ...], CounterSet]:
    """Every (profile, placement) as a device, then the whole GPU consuming every counter.

    Order guides first fit: small profiles first, each from its highest placement down, so that
    small claims fill the top of the GPU and leave low placements free for large profiles.
    """
    counter_set = mig_counter_set(gpu)
    devices = []
    for profile in gpu.mig_profiles:
        for p in sorted(profile.placements, key=lambda x: -x.start):
            devices.append(
                Device(
                    mig_name(gpu, profile.name, p.start),
                    tuple(_mig_attributes(inv, gpu, profile, p.start, p.size)),
                    _mig_capacity(profile),
                    (_mig_consumption(gpu, profile, p.start, p.size),),
                )
            )
    everything = CounterConsumption(counter_set.name, counter_set.counters)
    devices.append(whole_gpu(inv, gpu, (everything,)))
    return tuple(devices), counter_set


def static_mig(inv: Inventory, gpu: Gpu) -> tuple[Device, ...]:
    """The MIG devices that exist on the GPU, as plain devices (clusters without partitionable devices)."""
    return tuple(_static_mig_device(inv, gpu, d) for d in gpu.mig_devices)


def _static_mig_device(inv: Inventory, gpu: Gpu, dev: MigDevice) -> Device:
    profile = gpu.mig_profile(dev.profile)
    assert profile is not None
    attrs = [("uuid", dev.uuid), *_mig_attributes(inv, gpu, profile, dev.placement.start, dev.placement.size)]
    return Device(mig_name(gpu, dev.profile, dev.placement.start), tuple(attrs), _mig_capacity(profile))


# --- time-slicing and sharing ----------------------------------------------------------------------


def timeslice(
    inv: Inventory, gpu: Gpu, replicas: int, with_counters: bool
) -> tuple[tuple[Device, ...], CounterSet | None]:
    """N replicas; with counters also the whole GPU, which excludes (and is excluded by) any replica."""
    set_name = f"gpu-{gpu.minor}-ts"
    devices = []
    for k in range(replicas):
        attrs = [("uuid", gpu.uuid), *_gpu_attributes(inv, gpu, "timeslice"), ("replica", k)]
        consumes = (CounterConsumption(set_name, (("replicas", "1"),)),) if with_counters else ()
        devices.append(Device(f"gpu-{gpu.minor}-ts-{k}", tuple(attrs), _gpu_capacity(gpu), consumes))
    if not with_counters:
        return tuple(devices), None
    total = quantity.decimal(replicas)
    devices.append(whole_gpu(inv, gpu, (CounterConsumption(set_name, (("replicas", total),)),)))
    return tuple(devices), CounterSet(set_name, (("replicas", total),))


def shared(inv: Inventory, gpu: Gpu) -> Device:
    """One device many claims can share, each consuming memory and a percentage of compute (MPS limits)."""
    attrs = [("uuid", gpu.uuid), *_gpu_attributes(inv, gpu, "shared")]
    capacity = (
        ("memory", Capacity(quantity.binary(gpu.memory_bytes), RequestPolicy("1Gi", "256Mi", "256Mi"))),
        ("compute", Capacity("100", RequestPolicy("10", "1", "1", "100"))),
    )  # only consumable capacities: one without a request policy would be taken whole by every share
    return Device(f"gpu-{gpu.minor}-shared", tuple(attrs), capacity, allow_multiple_allocations=True)
