"""From an allocated claim to the device records to prepare, validated before anything is touched. Pure.

Every refusal happens here, before the checkpoint's first phase: a claim that is not allocated (or has
no device allocated by this driver, or one from another node), a device this node does not have, an opaque config
that does not decode or does not fit the device, a time-slice interval that conflicts with the GPU's other users,
and MPS combined with what it cannot share a process or a GPU with (``check_mps``, docs/kubelet-plugin.md):

- within one claim (its devices end up in one container): devices of different MPS control daemons (a CUDA process
  reaches one daemon, through its one ``CUDA_MPS_PIPE_DIRECTORY``), or an MPS device beside a device without MPS
  (a process that reaches a daemon runs all its CUDA work through that daemon's server, which serves only the
  daemon's device);
- on one GPU without MIG, across the node's claims: MPS users (the GPU in EXCLUSIVE_PROCESS compute mode, one CUDA
  context: the MPS server's) beside users without MPS (time-slice replicas or shares that need contexts of their
  own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from api.config.resolve import resolve_allocation
from api.config.v1alpha1 import DriverConfig, Mps, TimeSlicing
from api.errors import ConfigError
from dra_driver.gpu_facts import full_size_profile
from dra_driver.inventory import Gpu, Inventory
from dra_driver.kubeletplugin.protocol import ClaimRef
from dra_driver.resourceslice import quantity
from dra_driver.slices.devices import label
from dra_driver.slices.names import DeviceRef, MigRef, SharedRef, TimeSliceRef, WholeRef, device_type, parse_device_name
from kubelet_plugin.records import (
    ClaimRecord,
    DeviceRecord,
    Hardware,
    MigPartition,
    MpsSettings,
    SharedGpu,
    TimeSliceReplica,
    WholeGpu,
)
from kubelet_plugin.sharing import IntervalConflict, TimeSliceUse, check_interval


class ClaimRejected(Exception):
    """The claim cannot be prepared here; the message says why and what to do."""


@dataclass(frozen=True)
class Context:
    driver: str
    node: str
    inventory: Inventory
    mps_root: str  # host directory holding the pipe directory of each MPS control daemon
    dynamic_mig: bool = True  # partitions made per claim; False: static MIG, claims get existing MIG devices


def _gpu(ctx: Context, minor: int, device: str) -> Gpu:
    for gpu in ctx.inventory.gpus:
        if gpu.minor == minor:
            return gpu
    raise ClaimRejected(f"device {device}: this node has no healthy GPU with minor number {minor}")


def _hardware(ctx: Context, ref: DeviceRef, device: str, config: DriverConfig) -> Hardware:
    gpu = _gpu(ctx, ref.minor, device)
    match ref:
        case WholeRef():
            full = full_size_profile(gpu) if gpu.mig_enabled else None
            if full is not None:  # CUDA sees a MIG-mode GPU only through a MIG device
                return MigPartition(gpu.uuid, gpu.index, full.name, 0, full.memory_slices)
            return WholeGpu(gpu.uuid, gpu.index)
        case MigRef(_, profile_label, start):
            profile = next((p for p in gpu.mig_profiles if label(p.name) == profile_label), None)
            if profile is None or all(p.start != start for p in profile.placements):
                raise ClaimRejected(f"device {device}: GPU {gpu.index} offers no MIG {profile_label} at {start}")
            if ctx.dynamic_mig:
                return MigPartition(gpu.uuid, gpu.index, profile.name, start, profile.memory_slices)
            existing = next(
                (d for d in gpu.mig_devices if d.profile == profile.name and d.placement.start == start), None
            )
            if existing is None:
                raise ClaimRejected(f"device {device}: the MIG device no longer exists on GPU {gpu.index}")
            return MigPartition(
                gpu.uuid,
                gpu.index,
                profile.name,
                start,
                profile.memory_slices,
                existing.gpu_instance_id,
                existing.compute_instance_id,
                existing.uuid,
                created=False,
            )
        case TimeSliceRef():
            interval = config.sharing.interval if isinstance(config.sharing, TimeSlicing) else "Default"
            return TimeSliceReplica(gpu.uuid, gpu.index, interval)
        case SharedRef():
            return SharedGpu(gpu.uuid, gpu.index)
        case _:
            assert_never(ref)


def _mps_daemon(ref: DeviceRef, device: str) -> str:
    """The MPS control daemon a device uses: a MIG device's own, else its GPU's (one daemon per CUDA device: in
    EXCLUSIVE_PROCESS compute mode a GPU takes one MPS server, so claims sharing a GPU share its daemon)."""
    return device if isinstance(ref, MigRef) else f"gpu-{ref.minor}"


def _mps(ctx: Context, daemon: str, config: DriverConfig, result: Mapping[str, Any]) -> MpsSettings | None:
    consumed = result.get("consumedCapacity") or {}
    if isinstance(config.sharing, Mps):
        m = config.sharing
        limits = m.per_device_pinned_memory_limit
        if m.default_pinned_device_memory_limit is not None:
            limits = (("default", m.default_pinned_device_memory_limit), *limits)
        return MpsSettings(daemon, f"{ctx.mps_root}/{daemon}", m.default_active_thread_percentage, limits)
    if consumed:  # a share of a shared GPU: its limits come from what the scheduler granted
        percentage = int(quantity.parse(consumed["compute"])) if "compute" in consumed else None
        limits = (("default", quantity.parse(consumed["memory"])),) if "memory" in consumed else ()
        return MpsSettings(daemon, f"{ctx.mps_root}/{daemon}", percentage, limits)
    return None


def plan_claim(
    ctx: Context, claim_ref: ClaimRef, claim: Mapping[str, Any], others: Iterable[ClaimRecord]
) -> tuple[DeviceRecord, ...]:
    """The devices to prepare for ``claim`` (a ResourceClaim as the API returns it), or ``ClaimRejected``."""
    meta = claim.get("metadata", {})
    if meta.get("uid") != claim_ref.uid:
        raise ClaimRejected(
            f"claim {claim_ref.namespace}/{claim_ref.name} has UID {meta.get('uid')}, the kubelet "
            f"asked for {claim_ref.uid}: it was deleted and re-created; the pod must be re-created"
        )
    allocation = claim.get("status", {}).get("allocation")
    if not allocation:
        raise ClaimRejected("claim is not allocated (yet); the scheduler allocates it when it schedules the pod")
    results = [r for r in allocation.get("devices", {}).get("results") or [] if r.get("driver") == ctx.driver]
    if not results:
        raise ClaimRejected(
            f"claim {claim_ref.namespace}/{claim_ref.name} has no devices allocated by driver {ctx.driver}: "
            "its status.allocation names only other drivers, so this driver has nothing to prepare"
        )
    for r in results:
        if r.get("pool") != ctx.node:
            raise ClaimRejected(
                f"device {r.get('device')} is allocated from pool {r.get('pool')}, not this node ({ctx.node})"
            )
    try:
        configs = resolve_allocation(allocation.get("devices", {}).get("config"), ctx.driver)
        records = []
        for r in results:
            ref = parse_device_name(r["device"])
            request = str(r["request"])
            config = configs.config_for(request, device_type(ref))
            records.append(
                DeviceRecord(
                    request_names=(request.split("/", 1)[0],),
                    pool=ctx.node,
                    device=r["device"],
                    hardware=_hardware(ctx, ref, r["device"], config),
                    share_id=r.get("shareID"),
                    mps=_mps(ctx, _mps_daemon(ref, r["device"]), config, r),
                )
            )
    except ConfigError as exc:
        raise ClaimRejected(f"invalid configuration: {exc}") from exc
    check_beside(claim_ref, records, others)
    return tuple(records)


def check_beside(claim_ref: ClaimRef, records: Iterable[DeviceRecord], others: Iterable[ClaimRecord]) -> None:
    """``ClaimRejected`` if the planned ``records`` cannot be prepared beside the ``others`` (the claims prepared
    on this node): time-slice intervals and MPS use of a GPU must agree. The records do not depend on the
    others: ``plan_claim(..., [])`` then this, under the GPUs' locks, is ``plan_claim(..., others)``."""
    others, mine = list(others), list(records)
    _check_intervals(claim_ref, mine, others)
    check_mps(claim_ref, mine, others)


def check_available(records: Iterable[DeviceRecord], unavailable: Callable[[DeviceRecord], str | None]) -> None:
    """Refuse a claim a device of which needs what this node lacks (``GpuHardware.unavailable``: a driver tool)."""
    reasons = [why for r in records if (why := unavailable(r)) is not None]
    if reasons:
        raise ClaimRejected("; ".join(dict.fromkeys(reasons)))


def _check_intervals(claim_ref: ClaimRef, records: list[DeviceRecord], others: Iterable[ClaimRecord]) -> None:
    uses = [
        TimeSliceUse(rec.claim.uid, d.hardware.gpu_uuid, d.hardware.interval)
        for rec in others
        for d in rec.devices
        if isinstance(d.hardware, TimeSliceReplica)
    ]
    mine = [d.hardware for d in records if isinstance(d.hardware, TimeSliceReplica)]
    for hw in mine:
        try:
            check_interval(uses, hw.gpu_uuid, hw.interval, claim_ref.uid)
        except IntervalConflict as exc:
            raise ClaimRejected(str(exc)) from exc


def _named(devices: Iterable[str]) -> str:
    return ", ".join(sorted(set(devices)))


def check_mps(claim_ref: ClaimRef, records: list[DeviceRecord], others: Iterable[ClaimRecord]) -> None:
    """Refuse MPS combined with what it cannot share a process or a GPU with (see the module docstring)."""
    daemons: dict[str, list[str]] = {}
    for d in records:
        if d.mps is not None:
            daemons.setdefault(d.mps.control_daemon, []).append(d.device)
    plain = [d.device for d in records if d.mps is None]
    if len(daemons) > 1:
        served = "; ".join(f"{_named(devs)} by {daemon}" for daemon, devs in sorted(daemons.items()))
        raise ClaimRejected(
            f"devices {_named(d for devs in daemons.values() for d in devs)} are served by different MPS control "
            f"daemons ({served}), and a container reaches only one (CUDA_MPS_PIPE_DIRECTORY names one): put each "
            "MPS device in a claim of its own, for a container of its own"
        )
    if daemons and plain:
        raise ClaimRejected(
            f"device(s) {_named(d for devs in daemons.values() for d in devs)} use MPS and {_named(plain)} do not: "
            "a CUDA process that reaches an MPS control daemon runs all its work through that daemon's server, "
            f"which serves only its own device, so {_named(plain)} would be unusable in the same container: use "
            "MPS for all of the claim's devices of one GPU or none, or separate claims"
        )
    _check_mps_per_gpu(claim_ref, records, others)


def _check_mps_per_gpu(claim_ref: ClaimRef, records: list[DeviceRecord], others: Iterable[ClaimRecord]) -> None:
    """MPS users and users without MPS never share a GPU without MIG (compute mode is GPU-wide)."""
    users: dict[str, dict[bool, list[str]]] = {}  # GPU UUID -> uses MPS -> devices ("<device> of claim ns/name")
    mine: set[str] = set()
    for d in records:
        if not isinstance(d.hardware, MigPartition):
            users.setdefault(d.hardware.gpu_uuid, {}).setdefault(d.mps is not None, []).append(d.device)
            mine.add(d.hardware.gpu_uuid)
    for rec in others:
        if rec.claim.uid == claim_ref.uid:
            continue
        for d in rec.devices:
            if not isinstance(d.hardware, MigPartition) and d.hardware.gpu_uuid in mine:
                who = f"{d.device} of claim {rec.claim.namespace}/{rec.claim.name}"
                users[d.hardware.gpu_uuid].setdefault(d.mps is not None, []).append(who)
    for gpu, kinds in sorted(users.items()):
        if len(kinds) > 1:
            raise ClaimRejected(
                f"GPU {gpu}: {_named(kinds[True])} use MPS (the GPU in EXCLUSIVE_PROCESS compute mode: one CUDA "
                f"context, the MPS server's) and {_named(kinds[False])} share it without MPS (time-slicing: "
                "contexts of their own): one GPU cannot do both; give every claim on the GPU the same sharing "
                "strategy, or use another GPU"
            )
