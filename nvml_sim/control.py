"""Operate a simulated machine from outside NVML: create it, inject faults, reset GPUs, inspect state.

This is the simulated equivalent of racking a server, pulling a GPU off the bus (``lost``) or
resetting it. Tests, the sandbox and ``dra-gpu sim`` use it; driver code never does. A request the machine
cannot take (a GPU index it does not have, a state file that is not a machine) raises ``InvalidRequest``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

from nvml_sim import machine
from nvml_sim.abi import STATE_ENV
from nvml_sim.build import library_dir, library_path
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
        with self._mutate() as st:
            machine.set_fault(_gpu(st, gpu_index), fault)

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
        """Environment for a child process that should see this machine through the normal loader path."""
        ld = os.environ.get("LD_LIBRARY_PATH", "")
        return {STATE_ENV: str(self.state_path), "LD_LIBRARY_PATH": f"{library_dir()}:{ld}".rstrip(":")}

    def activate(self) -> None:
        """Make this process's NVML (as loaded by pynvml) the simulated one, on this machine.

        Loading the library by path registers its SONAME, so pynvml's ``CDLL("libnvidia-ml.so.1")``
        resolves to it. The state path is read at ``nvmlInit``.
        """
        os.environ[STATE_ENV] = str(self.state_path)
        ctypes.CDLL(str(library_path()))
