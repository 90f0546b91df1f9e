"""The simulated machine's state and the MIG rules NVML enforces on it. Pure: no I/O.

State is a JSON-able dict (so separate processes can share it through ``store.StateStore``)::

    {"version": 2, "profile": "dgx-a100", "driverVersion": ..., "cudaDriverVersion": ...,
     "generation": 7,                       # bumped on every MIG object created (fresh MIG UUIDs)
     "events": [...], "eventSeq": 12,       # version 2: what nvmlEventSetWait delivers (see events.py)
     "gpus": [{"index", "model", "uuid", "serial", "minor", "pciBus", "numaNode",
               "mig": {"current": 0|1, "pending": 0|1}, "computeMode": 0, "fault": null|"lost"|"failing",
               "ecc": {"volatile": [0, 0], "aggregate": [0, 0]},     # version 2 (events.py)
               "gpuInstances": [{"id", "profileId", "start", "size",
                                 "computeInstances": [{"id", "profileId", "start", "size", "uuid"}]}]}]}

Version 2 only adds keys; readers take a missing one as empty, so version 1 files keep working. PCIe and CPU
topology are not stored: they follow from the profile (``hardware.MACHINE_PROFILES[state["profile"]]``).
Every rule violation raises ``NvmlFault`` carrying NVML's return code.
"""

from __future__ import annotations

from typing import Any

from nvml_sim import codes, events
from nvml_sim.hardware import (
    MACHINE_PROFILES,
    ComputeInstanceProfile,
    GpuInstanceProfile,
    GpuModel,
    Placement,
    compute_instance_profiles,
    gpu_models,
    gpu_uuid,
    mig_uuid,
)

State = dict[str, Any]
Gpu = dict[str, Any]
Gi = dict[str, Any]
Ci = dict[str, Any]

STATE_VERSION = 2
# lost: every call answers GPU_IS_LOST; failing: creating GPU/compute instances fails (UNKNOWN);
# ci-failing: only creating compute instances fails (exercises rollback of a half-made partition).
FAULTS = (None, "lost", "failing", "ci-failing")


class NvmlFault(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(codes.error_string(code))
        self.code = code


def new_state(profile_name: str, host: str = "", mig_enabled: bool = True) -> State:
    """A freshly booted machine of the named profile. MIG-capable GPUs start with MIG mode as given."""
    try:
        profile = MACHINE_PROFILES[profile_name]
    except KeyError:
        valid = ", ".join(sorted(MACHINE_PROFILES))
        raise ValueError(f"unknown simulated profile {profile_name!r}; valid profiles: {valid}") from None
    gpus = []
    for index, slot in enumerate(profile.gpus):
        model = gpu_models()[slot.model]
        mode = 1 if (mig_enabled and model.mig_capable) else 0
        gpus.append(
            {
                "index": index,
                "model": slot.model,
                "uuid": gpu_uuid(profile_name, index, host),
                "serial": f"{1560221000000 + index * 37 + len(host)}",
                "minor": index,
                "pciBus": slot.pci_bus,
                "numaNode": slot.numa_node,
                "mig": {"current": mode, "pending": mode},
                "computeMode": 0,
                "fault": None,
                "ecc": {"volatile": [0, 0], "aggregate": [0, 0]},
                "gpuInstances": [],
            }
        )
    return {
        "version": STATE_VERSION,
        "profile": profile_name,
        "host": host,
        "driverVersion": profile.driver_version,
        "cudaDriverVersion": profile.cuda_driver_version,
        "generation": 0,
        "events": [],
        "eventSeq": 0,
        "gpus": gpus,
    }


def model_of(gpu: Gpu) -> GpuModel:
    return gpu_models()[gpu["model"]]


def gpu_at(state: State, index: int) -> Gpu:
    if not 0 <= index < len(state["gpus"]):
        raise NvmlFault(codes.INVALID_ARGUMENT)
    gpu: Gpu = state["gpus"][index]
    return gpu


def check_alive(gpu: Gpu) -> None:
    if gpu["fault"] == "lost":
        raise NvmlFault(codes.GPU_IS_LOST)


def mig_enabled(gpu: Gpu) -> bool:
    return bool(gpu["mig"]["current"])


def require_mig_capable(gpu: Gpu) -> GpuModel:
    model = model_of(gpu)
    if not model.mig_capable:
        raise NvmlFault(codes.NOT_SUPPORTED)
    return model


def require_mig_enabled(gpu: Gpu) -> GpuModel:
    model = require_mig_capable(gpu)
    if not mig_enabled(gpu):
        raise NvmlFault(codes.NOT_SUPPORTED)
    return model


def set_mig_mode(gpu: Gpu, mode: int) -> int:
    """Returns the activation status. Ampere: pending until reset; Hopper: at once."""
    model = require_mig_capable(gpu)
    if mode not in (0, 1):
        raise NvmlFault(codes.INVALID_ARGUMENT)
    if gpu["gpuInstances"] and mode != gpu["mig"]["current"]:
        raise NvmlFault(codes.IN_USE)
    gpu["mig"]["pending"] = mode
    if model.resets_to_change_mig_mode and gpu["mig"]["current"] != mode:
        return codes.RESET_REQUIRED
    gpu["mig"]["current"] = mode
    return codes.SUCCESS


def reset_gpu(gpu: Gpu) -> None:
    """What a GPU reset does: pending MIG mode applies, MIG objects, settings and volatile ECC counts are gone."""
    gpu["mig"]["current"] = gpu["mig"]["pending"]
    gpu["gpuInstances"] = []
    gpu["computeMode"] = 0
    events.reset_volatile_ecc(gpu)
    if gpu["fault"] == "lost":
        gpu["fault"] = None


def gi_profile_by_id(gpu: Gpu, profile_id: int) -> GpuInstanceProfile:
    profile = model_of(gpu).gi_profile_by_id(profile_id)
    if profile is None:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    return profile


def _used_slices(gpu: Gpu) -> set[int]:
    return {s for gi in gpu["gpuInstances"] for s in range(gi["start"], gi["start"] + gi["size"])}


def _used_compute_slices(gpu: Gpu) -> int:
    model = model_of(gpu)
    total = 0
    for gi in gpu["gpuInstances"]:
        profile = model.gi_profile_by_id(gi["profileId"])
        total += profile.slice_count if profile else 0
    return total


def _fits(gpu: Gpu, profile: GpuInstanceProfile, placement: Placement, used: set[int]) -> bool:
    return not (set(placement.slices()) & used)


def remaining_capacity(gpu: Gpu, profile: GpuInstanceProfile) -> int:
    model = model_of(gpu)
    existing = sum(1 for gi in gpu["gpuInstances"] if gi["profileId"] == profile.profile_id)
    used = _used_slices(gpu)
    free_compute = model.compute_slices - _used_compute_slices(gpu)
    count = 0
    for placement in profile.placements:
        if _fits(gpu, profile, placement, used) and free_compute >= profile.slice_count:
            used |= set(placement.slices())
            free_compute -= profile.slice_count
            count += 1
    return max(0, min(count, profile.instance_count - existing))


def _preferred_gi_id(model: GpuModel, profile: GpuInstanceProfile, placement: Placement) -> int:
    """GI ids observed on real GPUs are tied to the placement slot (A100/H100: 1g@s -> 7+s, 3g@0 -> 2, ...)."""
    if placement.size >= model.memory_slices:
        return 0
    if model.memory_slices == 8:
        if profile.slice_count == 4:
            return 1
        by_size = {4: {0: 2, 4: 1}, 2: {0: 3, 2: 4, 4: 5, 6: 6}, 1: {s: 7 + s for s in range(7)}}
    else:
        by_size = {2: {0: 1, 2: 2}, 1: {s: 3 + s for s in range(4)}}
    return by_size.get(placement.size, {}).get(placement.start, 1)


def create_gpu_instance(gpu: Gpu, profile_id: int, placement: Placement | None) -> Gi:
    model = require_mig_enabled(gpu)
    if gpu["fault"] == "failing":
        raise NvmlFault(codes.UNKNOWN)
    profile = gi_profile_by_id(gpu, profile_id)
    used = _used_slices(gpu)
    existing = sum(1 for gi in gpu["gpuInstances"] if gi["profileId"] == profile_id)
    if placement is not None and placement not in profile.placements:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    candidates = [placement] if placement is not None else list(profile.placements)
    free_compute = model.compute_slices - _used_compute_slices(gpu)
    chosen = next((p for p in candidates if _fits(gpu, profile, p, used)), None)
    if chosen is None or existing >= profile.instance_count or free_compute < profile.slice_count:
        raise NvmlFault(codes.INSUFFICIENT_RESOURCES)
    taken = {gi["id"] for gi in gpu["gpuInstances"]}
    gi_id = _preferred_gi_id(model, profile, chosen)
    if gi_id in taken:
        gi_id = min(set(range(1, 64)) - taken)
    gi = {"id": gi_id, "profileId": profile_id, "start": chosen.start, "size": chosen.size, "computeInstances": []}
    gpu["gpuInstances"].append(gi)
    gpu["gpuInstances"].sort(key=lambda g: g["id"])
    return gi


def gi_by_id(gpu: Gpu, gi_id: int) -> Gi:
    gi: Gi
    for gi in gpu["gpuInstances"]:
        if gi["id"] == gi_id:
            return gi
    raise NvmlFault(codes.NOT_FOUND)


def destroy_gpu_instance(gpu: Gpu, gi_id: int) -> None:
    gi = gi_by_id(gpu, gi_id)
    if gi["computeInstances"]:
        raise NvmlFault(codes.IN_USE)
    gpu["gpuInstances"].remove(gi)


def gi_profile_of(gpu: Gpu, gi: Gi) -> GpuInstanceProfile:
    return gi_profile_by_id(gpu, gi["profileId"])


def ci_profiles(gpu: Gpu, gi: Gi) -> tuple[ComputeInstanceProfile, ...]:
    return compute_instance_profiles(gi_profile_of(gpu, gi))


def ci_profile_by_id(gpu: Gpu, gi: Gi, profile_id: int) -> ComputeInstanceProfile:
    for profile in ci_profiles(gpu, gi):
        if profile.enum == profile_id:
            return profile
    raise NvmlFault(codes.NOT_SUPPORTED if profile_id < 9 else codes.INVALID_ARGUMENT)


def _used_ci_slices(gi: Gi) -> set[int]:
    return {s for ci in gi["computeInstances"] for s in range(ci["start"], ci["start"] + ci["size"])}


def ci_remaining_capacity(gpu: Gpu, gi: Gi, profile: ComputeInstanceProfile) -> int:
    gi_slices = gi_profile_of(gpu, gi).slice_count
    used = _used_ci_slices(gi)
    count = 0
    for placement in profile.placements(gi_slices):
        if not (set(placement.slices()) & used):
            used |= set(placement.slices())
            count += 1
    existing = sum(1 for ci in gi["computeInstances"] if ci["profileId"] == profile.enum)
    return max(0, min(count, profile.instance_count - existing))


def create_compute_instance(state: State, gpu: Gpu, gi: Gi, profile_id: int, placement: Placement | None) -> Ci:
    if gpu["fault"] in ("failing", "ci-failing"):
        raise NvmlFault(codes.UNKNOWN)
    profile = ci_profile_by_id(gpu, gi, profile_id)
    gi_slices = gi_profile_of(gpu, gi).slice_count
    possible = profile.placements(gi_slices)
    if placement is not None and placement not in possible:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    used = _used_ci_slices(gi)
    candidates = [placement] if placement is not None else list(possible)
    chosen = next((p for p in candidates if not (set(p.slices()) & used)), None)
    if chosen is None or ci_remaining_capacity(gpu, gi, profile) == 0:
        raise NvmlFault(codes.INSUFFICIENT_RESOURCES)
    ci_id = min(set(range(0, 16)) - {ci["id"] for ci in gi["computeInstances"]})
    state["generation"] += 1
    ci = {
        "id": ci_id,
        "profileId": profile_id,
        "start": chosen.start,
        "size": chosen.size,
        "uuid": mig_uuid(gpu["uuid"], gi["id"], ci_id, state["generation"]),
    }
    gi["computeInstances"].append(ci)
    gi["computeInstances"].sort(key=lambda c: c["id"])
    return ci


def ci_by_id(gi: Gi, ci_id: int) -> Ci:
    ci: Ci
    for ci in gi["computeInstances"]:
        if ci["id"] == ci_id:
            return ci
    raise NvmlFault(codes.NOT_FOUND)


def destroy_compute_instance(gi: Gi, ci_id: int) -> None:
    gi["computeInstances"].remove(ci_by_id(gi, ci_id))


def mig_devices(gpu: Gpu) -> list[tuple[Gi, Ci]]:
    """MIG devices in NVML's index order: one per compute instance, by GI id then CI id."""
    return [(gi, ci) for gi in gpu["gpuInstances"] for ci in gi["computeInstances"]]


def max_mig_devices(gpu: Gpu) -> int:
    model = model_of(gpu)
    return model.compute_slices if (model.mig_capable and mig_enabled(gpu)) else 0


def set_compute_mode(gpu: Gpu, mode: int) -> None:
    if mode not in (0, 2, 3):
        raise NvmlFault(codes.INVALID_ARGUMENT)
    gpu["computeMode"] = mode


def set_fault(state: State, gpu: Gpu, fault: str | None) -> None:
    """A GPU that becomes ``lost`` reports XID 79 (fell off the bus); clearing the fault forgets its events."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; valid faults: lost, failing, ci-failing, none")
    if fault == "lost" and gpu["fault"] != "lost":
        events.record(state, gpu["index"], events.XID_CRITICAL_ERROR, events.XID_FELL_OFF_THE_BUS)
    if fault is None:
        events.clear(state, gpu["index"])
    gpu["fault"] = fault


def inject_ecc_errors(state: State, gpu: Gpu, uncorrected: bool, count: int = 1) -> None:
    """Memory errors: counted, reported as ECC events, and a double-bit (uncorrected) one also as XID 48."""
    if count < 1:
        raise ValueError(f"an ECC error count must be at least 1, not {count}")
    events.add_ecc_errors(gpu, uncorrected, count)
    kind = events.DOUBLE_BIT_ECC_ERROR if uncorrected else events.SINGLE_BIT_ECC_ERROR
    for _ in range(count):
        events.record(state, gpu["index"], kind)
        if uncorrected:
            events.record(state, gpu["index"], events.XID_CRITICAL_ERROR, events.XID_DOUBLE_BIT_ECC)
