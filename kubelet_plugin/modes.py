"""Can this GPU change to the mode its NodeGpuModes entry asks for, and what must the hardware do? Pure.

``decide`` compares a GPU's current mode (what its slices publish) with the desired one and returns a closed
``Decision``: ``Keep`` (already there), ``Wait`` (a claim is allocated or prepared on it: Pending), ``Refuse``
(unknown profile, a layout that does not fit, MIG on a GPU without it) or ``Change`` with the MIG mode the GPU
must be in and, for a static layout, the exact placements to create (planned here, before any side effect).
A GPU with MIG off lists no instance profiles (NVML shows them only while MIG is on), so there the layout is
planned once MIG is on (``Change.after_mig_on``); if it does not fit then, MIG is switched off again.

MIG mode per desired mode: ``mig`` needs it on; ``timeslice:N`` and ``shared`` need it off (CUDA sees no
GPU outside MIG devices on a MIG-enabled GPU); ``whole`` leaves it as it is (a MIG-enabled GPU is claimed
whole through its full-size instance).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from api.gpumodes import (
    CONDITION_APPLIED,
    MAX_REASON,
    Condition,
    GpuModeSpec,
    GpuModeStatus,
    NodeGpuModesStatus,
    State,
)
from api.partitioning import Mig, Shared, TimeSlice, Whole
from dra_driver.inventory import Gpu, MigProfile


@dataclass(frozen=True)
class Keep:
    """The GPU is in the desired mode already."""


@dataclass(frozen=True)
class Wait:
    reason: str


@dataclass(frozen=True)
class Refuse:
    reason: str


@dataclass(frozen=True)
class Change:
    mig_enabled: bool | None  # the MIG mode the GPU must be in (None: either)
    layout: tuple[tuple[str, int], ...] | None  # static layout: (profile, placement start) to create, in order
    after_mig_on: tuple[str, ...] | None = None  # static layout to plan once MIG is on (MIG off: no profiles yet)


Decision = Keep | Wait | Refuse | Change


def mig_needed(desired: GpuModeSpec) -> bool | None:
    match desired.mode:
        case Mig():
            return True
        case TimeSlice() | Shared():
            return False
        case Whole():
            return None
    return None  # pragma: no cover (the match is exhaustive)


def observed_layout(gpu: Gpu) -> tuple[str, ...]:
    """The profiles of the GPU's MIG devices, by placement."""
    return tuple(d.profile for d in sorted(gpu.mig_devices, key=lambda d: d.placement.start))


def same_layout(a: Iterable[str], b: Iterable[str]) -> bool:
    return sorted(a) == sorted(b)


def plan_layout(gpu: Gpu, layout: tuple[str, ...]) -> tuple[tuple[str, int], ...] | str:
    """Placements for exactly these profiles on an empty GPU, or why there are none (a message)."""
    profiles: list[MigProfile] = []
    for name in layout:
        profile = gpu.mig_profile(name)
        if profile is None:
            offered = ", ".join(p.name for p in gpu.mig_profiles)
            return f"GPU {gpu.index} ({gpu.product_name}) has no MIG profile {name}; it offers {offered}"
        profiles.append(profile)
    compute = max((p.compute_slices for p in gpu.mig_profiles), default=0)
    if sum(p.compute_slices for p in profiles) > compute:
        return f"layout {', '.join(layout)} needs more than the {compute} compute slices of GPU {gpu.index}"
    for profile in profiles:
        if sum(1 for p in profiles if p.name == profile.name) > profile.instance_count:
            return f"GPU {gpu.index} offers at most {profile.instance_count} instance(s) of {profile.name}"
    order = sorted(range(len(profiles)), key=lambda i: -profiles[i].memory_slices)  # largest first
    found = _place([profiles[i] for i in order], frozenset())
    if found is None:
        return f"layout {', '.join(layout)} does not fit the memory slices of GPU {gpu.index} in any placement"
    by_index = dict(zip(order, found, strict=True))
    return tuple((profiles[i].name, by_index[i]) for i in range(len(profiles)))


def _place(profiles: list[MigProfile], used: frozenset[int]) -> list[int] | None:
    """Backtracking over the profiles' placements (at most 7 instances: small)."""
    if not profiles:
        return []
    first, rest = profiles[0], profiles[1:]
    for placement in sorted(first.placements, key=lambda p: p.start):
        slices = frozenset(range(placement.start, placement.start + placement.size))
        if slices & used:
            continue
        tail = _place(rest, used | slices)
        if tail is not None:
            return [placement.start, *tail]
    return None


def busy_reason(claims: Iterable[str]) -> str | None:
    names = sorted(set(claims))
    if not names:
        return None
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (
        f"claim{'s' if len(names) > 1 else ''} {shown} {'are' if len(names) > 1 else 'is'} allocated or prepared on it"
    )


def in_desired_state(gpu: Gpu, current: GpuModeSpec, desired: GpuModeSpec) -> bool:
    """The GPU publishes the desired mode and its hardware is as that mode needs."""
    if current.mode != desired.mode:
        return False
    need = mig_needed(desired)
    if need is not None and gpu.mig_capable and gpu.mig_enabled != need:
        return False
    if desired.mig_layout is not None:
        return same_layout(observed_layout(gpu), desired.mig_layout)
    return current.mig_layout is None


def decide(gpu: Gpu, current: GpuModeSpec, desired: GpuModeSpec, busy: Iterable[str], partitionable: bool) -> Decision:
    """What to do for one GPU. ``busy``: "namespace/name" of claims allocated or prepared on its devices;
    ``partitionable``: the cluster takes partitionable devices (MIG made per claim, no static layout)."""
    if in_desired_state(gpu, current, desired):
        return Keep()
    need = mig_needed(desired)
    if need and not gpu.mig_capable:
        return Refuse(f"GPU {gpu.index} ({gpu.product_name}) cannot do MIG")
    layout, later = None, None
    if desired.mig_layout is not None:
        if partitionable:
            return Refuse(
                "this cluster publishes partitionable devices, so MIG instances are made per claim: leave migLayout out"
            )
        if not gpu.mig_enabled:
            later = desired.mig_layout
        else:
            planned = plan_layout(gpu, desired.mig_layout)
            if isinstance(planned, str):
                return Refuse(planned)
            layout = planned
    reason = busy_reason(busy)
    if reason is not None:
        return Wait(reason)
    return Change(need if gpu.mig_capable else None, layout, later)


# -- status -----------------------------------------------------------------------------------------------------


def gpu_status(
    previous: GpuModeStatus | None,
    uuid: str,
    current: GpuModeSpec,
    state: State,
    reason: str | None,
    now: str,
) -> GpuModeStatus:
    """The GPU's status entry; ``lastTransitionTime`` moves only when the state or the reason changes."""
    same = previous is not None and previous.state == state and previous.reason == reason
    return GpuModeStatus(
        uuid=uuid,
        mode=current.mode,
        state=state,
        last_transition_time=previous.last_transition_time if same and previous else now,
        mig_layout=current.mig_layout,
        reason=reason,
    )


def node_status(
    previous: NodeGpuModesStatus,
    generation: int,
    gpus: tuple[GpuModeStatus, ...],
    now: str,
    problems: tuple[str, ...] = (),
) -> NodeGpuModesStatus:
    """The object's status with its ``Applied`` condition: True when every named GPU is Applied and there is no
    problem outside them (``problems``: e.g. a named GPU this node does not have)."""
    waiting = [f"{g.uuid}: {g.state}: {g.reason}" for g in gpus if g.state != "Applied"] + list(problems)
    if not waiting:
        flag, reason, message = "True", "AllApplied", f"{len(gpus)} GPU(s) in the desired mode"
    else:
        flag, reason, message = "False", "NotApplied", f"{len(waiting)} not applied; {waiting[0]}"
    old = next((c for c in previous.conditions if c.type == CONDITION_APPLIED), None)
    moved = old is None or old.status != flag or old.reason != reason
    condition = Condition(
        type=CONDITION_APPLIED,
        status="True" if flag == "True" else "False",
        reason=reason,
        message=message[:MAX_REASON],
        last_transition_time=now if moved or old is None else old.last_transition_time,
        observed_generation=generation,
    )
    return NodeGpuModesStatus(generation, gpus, (condition,))
