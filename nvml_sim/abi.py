"""The C boundary of the simulated NVML: the process's NVML session, handle encoding, output helpers.

Handles are opaque pointers whose value encodes what they name, so any process can decode a handle
against the shared state file:
``(kind << 48) | (gpu index << 16) | (GPU instance id << 8) | compute instance id``.
A handle whose object no longer exists answers ``NVML_ERROR_INVALID_ARGUMENT``, as NVML does.
Event sets belong to the process that created them (as in NVML): ``(EVENT_SET << 48) | set number``.

Each exported function is bound to the C library as ``_py_<name>``; the library's exported C wrapper of that
name calls it once the embedded Python runs (``csource.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nvml_sim import codes
from nvml_sim.machine import Ci, Gi, Gpu, NvmlFault, State, check_alive, ci_by_id, gi_by_id, gpu_at
from nvml_sim.store import StateStore

STATE_ENV = "DRA_SIM_NVML_STATE"

DEVICE, MIG_DEVICE, GPU_INSTANCE, COMPUTE_INSTANCE, EVENT_SET = 1, 2, 3, 4, 5

EXPORTS: dict[str, Callable[..., int]] = {}
ffi: Any = None  # the embedded module's FFI, set by register()


@dataclass
class Session:
    count: int = 0
    store: StateStore | None = None


SESSION = Session()


def export(
    *, needs_init: bool = True, aliases: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a Python function as an exported NVML symbol; NvmlFault becomes its return code."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def symbol(*args: Any) -> Any:
            if needs_init and SESSION.count == 0:
                return codes.UNINITIALIZED
            try:
                result = fn(*args)
            except NvmlFault as fault:
                return fault.code
            return codes.SUCCESS if result is None else result

        for name in (fn.__name__, *aliases):
            EXPORTS[name] = symbol
        return fn

    return wrap


def register(module_ffi: Any) -> None:
    """Bind every exported symbol (called once by the library's embedded init code)."""
    global ffi
    ffi = module_ffi
    from nvml_sim import (  # noqa: F401  (they register themselves)
        exports_device,
        exports_events,
        exports_health,
        exports_mig,
        exports_topology,
    )

    for name, fn in EXPORTS.items():
        module_ffi.def_extern(name="_py_" + name, error=codes.UNKNOWN)(fn)


def open_session() -> int:
    path = os.environ.get(STATE_ENV)
    if not path or not Path(path).exists():
        return codes.DRIVER_NOT_LOADED
    if SESSION.store is None or SESSION.store.path != Path(path):
        SESSION.store = StateStore(Path(path))
    SESSION.count += 1
    return codes.SUCCESS


def store() -> StateStore:
    assert SESSION.store is not None
    return SESSION.store


def state() -> State:
    return store().read()


# --- handles ---------------------------------------------------------------------------------


def make_handle(kind: int, index: int, gi: int = 0, ci: int = 0) -> int:
    return (kind << 48) | (index << 16) | (gi << 8) | ci


def write_handle(out: Any, ctype: str, value: int) -> None:
    if out == ffi.NULL:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    out[0] = ffi.cast(ctype, value)


def decode(handle: Any) -> tuple[int, int, int, int]:
    value = int(ffi.cast("uintptr_t", handle))
    return value >> 48, (value >> 16) & 0xFFFFFFFF, (value >> 8) & 0xFF, value & 0xFF


@dataclass(frozen=True)
class Target:
    """What a device handle names: a GPU, or a MIG device (GPU instance + compute instance) on it."""

    state: State
    gpu: Gpu
    gi: Gi | None = None
    ci: Ci | None = None

    @property
    def is_mig(self) -> bool:
        return self.ci is not None


def _resolve(st: State, index: int) -> Gpu:
    try:
        return gpu_at(st, index)
    except NvmlFault:
        raise NvmlFault(codes.INVALID_ARGUMENT) from None


def device(handle: Any, st: State | None = None) -> Target:
    """Resolve a GPU or MIG device handle against the state (the current one unless given)."""
    kind, index, gi_id, ci_id = decode(handle)
    st = state() if st is None else st
    if kind not in (DEVICE, MIG_DEVICE):
        raise NvmlFault(codes.INVALID_ARGUMENT)
    gpu = _resolve(st, index)
    check_alive(gpu)
    if kind == DEVICE:
        return Target(st, gpu)
    try:
        gi = gi_by_id(gpu, gi_id)
        return Target(st, gpu, gi, ci_by_id(gi, ci_id))
    except NvmlFault:
        raise NvmlFault(codes.INVALID_ARGUMENT) from None


def gpu_device(handle: Any, st: State | None = None) -> Gpu:
    """A handle that must name a physical GPU (MIG device handles are NOT_SUPPORTED)."""
    target = device(handle, st)
    if target.is_mig:
        raise NvmlFault(codes.NOT_SUPPORTED)
    return target.gpu


def gpu_instance(handle: Any, st: State | None = None) -> tuple[Gpu, Gi]:
    kind, index, gi_id, _ = decode(handle)
    st = state() if st is None else st
    if kind != GPU_INSTANCE:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    gpu = _resolve(st, index)
    check_alive(gpu)
    try:
        return gpu, gi_by_id(gpu, gi_id)
    except NvmlFault:
        raise NvmlFault(codes.INVALID_ARGUMENT) from None


def compute_instance(handle: Any, st: State | None = None) -> tuple[Gpu, Gi, Ci]:
    kind, index, gi_id, ci_id = decode(handle)
    st = state() if st is None else st
    if kind != COMPUTE_INSTANCE:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    gpu = _resolve(st, index)
    check_alive(gpu)
    try:
        gi = gi_by_id(gpu, gi_id)
        return gpu, gi, ci_by_id(gi, ci_id)
    except NvmlFault:
        raise NvmlFault(codes.INVALID_ARGUMENT) from None


# --- outputs ---------------------------------------------------------------------------------


def put_str(buf: Any, length: int, text: str) -> None:
    data = text.encode() + b"\0"
    if buf == ffi.NULL:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    if len(data) > length:
        raise NvmlFault(codes.INSUFFICIENT_SIZE)
    ffi.memmove(buf, data, len(data))


def put(out: Any, value: int) -> None:
    if out == ffi.NULL:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    out[0] = value


def need(*pointers: Any) -> None:
    if any(p == ffi.NULL for p in pointers):
        raise NvmlFault(codes.INVALID_ARGUMENT)


def fill(struct: Any, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(struct, name, value)
