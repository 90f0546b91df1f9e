"""Operate a simulated machine from outside NVML: create it, inject faults and events, reset GPUs, inspect state.

This is the simulated equivalent of racking a server, pulling a GPU off the bus (``lost``), a GPU reporting
an XID or an ECC error, or resetting it. Tests, the sandbox and ``dra-gpu sim`` use it; driver code never
does. A request the machine cannot take (a GPU index it does not have, a state file that is not a machine)
raises ``InvalidRequest``.

The health API (what NVML's event API then delivers, in any process: see ``exports_events.py``)::

    sim = SimulatedMachine(path)
    sim.inject_xid(3, 48)                    # nvmlEventTypeXidCriticalError, eventData 48 (returns its seq)
    sim.inject_ecc_error(3, uncorrected=True)  # DoubleBitEccError + XID 48; counts in nvmlDeviceGetTotalEccErrors
    sim.inject_ecc_error(3, uncorrected=False) # SingleBitEccError
    sim.set_fault(3, "lost")                 # XidCriticalError 79, then every call on GPU 3 is GPU_IS_LOST
    sim.set_fault(3, None)                   # the GPU answers again; its recorded events are forgotten
    sim.clear_events()  /  sim.clear_events(3)
    sim.events()                             # [events.Event(seq, gpu, type, data, gi, ci)], oldest first

Event type constants are in ``nvml_sim.events`` (``XID_CRITICAL_ERROR``, ``DOUBLE_BIT_ECC_ERROR``, ...).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

from nvml_sim import events, machine, sysfs
from nvml_sim.abi import STATE_ENV
from nvml_sim.build import library_dir, library_path
from nvml_sim.environment import python_path
from nvml_sim.machine import Gpu, State
from nvml_sim.store import StateStore


class InvalidRequest(ValueError):
    """The request names a GPU the machine does not have, or the state file is not a simulated machine."""


def _checked(state: object, path: Path) -> State:
    if not isinstance(state, dict) or not isinstance(state.get("gpus"), list):
        raise InvalidRequest(f"{path} is not a simulated machine state file (no GPU list)")
    return state


def _gpu(state: State, index: int) -> Gpu:
    count = len(state["gpus"])
    if not 0 <= index < count:
        valid = f"valid GPUs are 0..{count - 1}" if count else "it has no GPUs"
        raise InvalidRequest(f"no GPU {index} on this {state.get('profile', 'simulated')} machine; {valid}")
    return machine.gpu_at(state, index)


class SimulatedMachine:
    """A simulated GPU server whose state lives in ``state_path``."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = Path(state_path)
        self.store = StateStore(self.state_path)

    @classmethod
    def create(cls, state_path: Path, profile: str, host: str = "", mig_enabled: bool = True) -> SimulatedMachine:
        sim = cls(state_path)
        sim.store.replace(machine.new_state(profile, host, mig_enabled))
        sim.sysfs_root()
        return sim

    def state(self) -> State:
        try:
            raw = self.store.read()
        except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
            raise InvalidRequest(f"{self.state_path} is not a simulated machine state file (not JSON: {exc})") from exc
        return _checked(raw, self.state_path)

    @contextlib.contextmanager
    def _mutate(self) -> Iterator[State]:
        self.state()  # the same checks before taking the lock
        with self.store.mutate() as st:
            yield _checked(st, self.state_path)

    def set_fault(self, gpu_index: int, fault: str | None) -> None:
        """``lost`` also records XID 79; ``None`` clears the fault and the GPU's recorded events."""
        with self._mutate() as st:
            machine.set_fault(st, _gpu(st, gpu_index), fault)

    def inject_xid(
        self, gpu_index: int, xid: int, gpu_instance: int | None = None, compute_instance: int | None = None
    ) -> int:
        """Record an XID critical error (optionally attributed to a MIG instance); returns its sequence number."""
        if not 0 < xid < 1 << 32:
            raise InvalidRequest(f"XID {xid} is not an XID: XIDs are positive numbers such as 48, 63, 79")
        with self._mutate() as st:
            _gpu(st, gpu_index)
            return events.record(st, gpu_index, events.XID_CRITICAL_ERROR, xid, gpu_instance, compute_instance)

    def inject_ecc_error(self, gpu_index: int, uncorrected: bool = True, count: int = 1) -> None:
        """ECC memory errors: counted, and reported as ECC events (an uncorrected one also as XID 48)."""
        if count < 1:
            raise InvalidRequest(f"an ECC error count must be at least 1, not {count}")
        with self._mutate() as st:
            machine.inject_ecc_errors(st, _gpu(st, gpu_index), uncorrected, count)

    def clear_events(self, gpu_index: int | None = None) -> None:
        with self._mutate() as st:
            if gpu_index is not None:
                _gpu(st, gpu_index)
            events.clear(st, gpu_index)

    def events(self) -> list[events.Event]:
        return events.recorded(self.state())

    def sysfs_root(self) -> Path:
        """The machine's sysfs tree (NUMA nodes, PCIe roots: see ``sysfs.py``), written or brought up to date."""
        return sysfs.write(sysfs.root_for(self.state_path), self.state())

    def reset_gpu(self, gpu_index: int) -> None:
        with self._mutate() as st:
            machine.reset_gpu(_gpu(st, gpu_index))

    def reboot(self) -> None:
        with self.store.mutate() as st:
            for gpu in st["gpus"]:
                machine.reset_gpu(gpu)

    def mig_partitions(self) -> list[tuple[int, int, int]]:
        """(gpu index, GPU instance id, compute instance id) of every compute instance; GIs without CIs as -1."""
        out = []
        for gpu in self.state()["gpus"]:
            for gi in gpu["gpuInstances"]:
                if not gi["computeInstances"]:
                    out.append((gpu["index"], gi["id"], -1))
                out.extend((gpu["index"], gi["id"], ci["id"]) for ci in gi["computeInstances"])
        return out

    def environ(self) -> dict[str, str]:
        """Environment for a child process that should see this machine through the normal loader path.

        ``PYTHONPATH`` reaches ``nvml_sim`` and cffi, for a client that is not this Python (Go, C): the library
        starts an interpreter of its own there (``dra-gpu sim env`` prints these as shell exports).
        """
        ld = os.environ.get("LD_LIBRARY_PATH", "")
        return {
            STATE_ENV: str(self.state_path.resolve()),
            "LD_LIBRARY_PATH": f"{library_dir()}:{ld}".rstrip(":"),
            "PYTHONPATH": python_path(os.environ.get("PYTHONPATH", "")),
        }

    def activate(self) -> None:
        """Make this process's NVML (as loaded by pynvml) the simulated one, on this machine.

        Loading the library by path registers its SONAME, so pynvml's ``CDLL("libnvidia-ml.so.1")``
        resolves to it. The state path is read at ``nvmlInit``.
        """
        os.environ[STATE_ENV] = str(self.state_path)
        ctypes.CDLL(str(library_path()))
