"""Exported NVML symbols: the event API (event sets, registration, waiting).

An event set lives in the process that created it; the events it delivers are recorded in the machine's state
file (``events.py``), so ``nvmlEventSetWait`` in one process sees an event that another process injected
(``SimulatedMachine.inject_xid``, ``dra-gpu sim xid``). Waiting polls the state file (a ``stat`` every
``POLL_S``; the file is re-read only when it changed) until an event the set wants arrives or ``timeoutms``
has passed (then ``NVML_ERROR_TIMEOUT``). A set delivers only events recorded after the GPU was registered,
each once, oldest first.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from nvml_sim import abi, codes, events
from nvml_sim.abi import DEVICE, EVENT_SET, export, make_handle, need, put
from nvml_sim.machine import NvmlFault, model_of

POLL_S = 0.02


@dataclass
class EventSet:
    cursor: int  # the last sequence number delivered (or skipped: older than the set)
    registrations: dict[int, tuple[int, int]] = field(default_factory=dict)  # GPU -> (type mask, registered at)


SETS: dict[int, EventSet] = {}
_ids = itertools.count(1)


def _event_set(handle: Any) -> EventSet:
    kind, number, _, _ = abi.decode(handle)
    if kind != EVENT_SET or number not in SETS:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    return SETS[number]


@export()
def nvmlEventSetCreate(out: Any) -> None:
    need(out)
    number = next(_ids)
    SETS[number] = EventSet(cursor=events.last_seq(abi.state()))
    abi.write_handle(out, "nvmlEventSet_t", make_handle(EVENT_SET, number))


@export()
def nvmlEventSetFree(handle: Any) -> None:
    _event_set(handle)
    del SETS[abi.decode(handle)[1]]


@export()
def nvmlDeviceGetSupportedEventTypes(handle: Any, out: Any) -> None:
    need(out)
    put(out, events.supported_types(model_of(abi.gpu_device(handle)).mig_capable))


@export()
def nvmlDeviceRegisterEvents(handle: Any, types: int, set_handle: Any) -> None:
    """Types the GPU cannot deliver are NOT_SUPPORTED, and so are MIG device handles (as in NVML)."""
    event_set = _event_set(set_handle)
    st = abi.state()
    gpu = abi.gpu_device(handle, st)
    if types & ~events.supported_types(model_of(gpu).mig_capable):
        raise NvmlFault(codes.NOT_SUPPORTED)
    mask, since = event_set.registrations.get(gpu["index"], (0, events.last_seq(st)))
    event_set.registrations[gpu["index"]] = (mask | types, since)


@export(aliases=("nvmlEventSetWait",))
def nvmlEventSetWait_v2(set_handle: Any, data: Any, timeout_ms: int) -> None:
    event_set = _event_set(set_handle)
    need(data)
    deadline = time.monotonic() + timeout_ms / 1000
    while (event := events.next_event(abi.state(), event_set.cursor, event_set.registrations)) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NvmlFault(codes.TIMEOUT)
        time.sleep(min(POLL_S, remaining))
    event_set.cursor = event.seq
    abi.fill(
        data,
        device=abi.ffi.cast("nvmlDevice_t", make_handle(DEVICE, event.gpu)),
        eventType=event.type,
        eventData=event.data,
        gpuInstanceId=events.NO_INSTANCE if event.gi is None else event.gi,
        computeInstanceId=events.NO_INSTANCE if event.ci is None else event.ci,
    )
