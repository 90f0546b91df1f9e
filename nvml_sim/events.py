"""Events of the simulated machine (what ``nvmlEventSetWait`` delivers) and its ECC error counters. Pure.

Events live in the state file, so a process that injects one (``SimulatedMachine.inject_xid``, ``dra-gpu sim
xid``) wakes a waiter in another process (the kubelet plugin)::

    "events": [{"seq": 12, "gpu": 3, "type": 8, "data": 79, "gi": null, "ci": null}, ...]   # oldest first
    "eventSeq": 12                        # the last sequence number handed out (never reused, even after clear)
    gpus[i]["ecc"] = {"volatile": [corrected, uncorrected], "aggregate": [corrected, uncorrected]}

Event type bits are NVML's ``nvmlEventType*`` values (the ``type`` field, and ``eventType`` of
``nvmlEventData_t``); ``data`` is the XID for ``XID_CRITICAL_ERROR`` and 0 otherwise, as NVML reports them.
State files written before events existed (version 1) read as having none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

State = dict[str, Any]
Gpu = dict[str, Any]

SINGLE_BIT_ECC_ERROR = 0x1  # nvmlEventTypeSingleBitEccError
DOUBLE_BIT_ECC_ERROR = 0x2  # nvmlEventTypeDoubleBitEccError
PSTATE = 0x4  # nvmlEventTypePState
XID_CRITICAL_ERROR = 0x8  # nvmlEventTypeXidCriticalError
CLOCK = 0x10  # nvmlEventTypeClock
MIG_CONFIG_CHANGE = 0x100  # nvmlEventMigConfigChange

XID_DOUBLE_BIT_ECC = 48  # "DBE (Double Bit Error) ECC Error"
XID_FELL_OFF_THE_BUS = 79  # "GPU has fallen off the bus"
NO_INSTANCE = 0xFFFFFFFF  # gpuInstanceId / computeInstanceId of an event not attributable to a MIG instance

KEEP_EVENTS = 1000  # older events are dropped (a waiter that far behind misses them, as with a full driver queue)


@dataclass(frozen=True)
class Event:
    seq: int
    gpu: int
    type: int
    data: int
    gi: int | None
    ci: int | None


def supported_types(mig_capable: bool) -> int:
    """Event types every simulated GPU (all have ECC memory) can deliver."""
    mask = SINGLE_BIT_ECC_ERROR | DOUBLE_BIT_ECC_ERROR | PSTATE | XID_CRITICAL_ERROR | CLOCK
    return mask | (MIG_CONFIG_CHANGE if mig_capable else 0)


def last_seq(state: State) -> int:
    return int(state.get("eventSeq", 0))


def record(state: State, gpu: int, type_: int, data: int = 0, gi: int | None = None, ci: int | None = None) -> int:
    """Append an event; returns its sequence number."""
    seq = last_seq(state) + 1
    state["eventSeq"] = seq
    events = state.setdefault("events", [])
    events.append({"seq": seq, "gpu": gpu, "type": type_, "data": data, "gi": gi, "ci": ci})
    del events[:-KEEP_EVENTS]
    return seq


def recorded(state: State) -> list[Event]:
    return [Event(**e) for e in state.get("events", [])]


def clear(state: State, gpu: int | None = None) -> None:
    """Forget recorded events (of one GPU, or all); sequence numbers go on from where they were."""
    state["events"] = [e for e in state.get("events", []) if gpu is not None and e["gpu"] != gpu]


def next_event(state: State, after: int, registrations: dict[int, tuple[int, int]]) -> Event | None:
    """The oldest event newer than ``after`` that a registration wants.

    ``registrations`` maps a GPU index to (event type mask, the last sequence number when it was registered):
    events from before the registration are not delivered, as NVML delivers only what happens afterwards.
    """
    for event in recorded(state):
        wanted = registrations.get(event.gpu)
        if event.seq > after and wanted is not None and event.seq > wanted[1] and event.type & wanted[0]:
            return event
    return None


# --- ECC error counters ----------------------------------------------------------------------------


def ecc_counts(gpu: Gpu, aggregate: bool) -> tuple[int, int]:
    """(corrected, uncorrected) errors: volatile since the last reset, or aggregate over the GPU's life."""
    counts = gpu.get("ecc", {}).get("aggregate" if aggregate else "volatile", [0, 0])
    return int(counts[0]), int(counts[1])


def add_ecc_errors(gpu: Gpu, uncorrected: bool, count: int) -> None:
    ecc = gpu.setdefault("ecc", {"volatile": [0, 0], "aggregate": [0, 0]})
    for kind in ("volatile", "aggregate"):
        ecc[kind][1 if uncorrected else 0] += count


def reset_volatile_ecc(gpu: Gpu) -> None:
    if "ecc" in gpu:
        gpu["ecc"]["volatile"] = [0, 0]
