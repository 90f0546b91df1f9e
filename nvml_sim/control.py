"""Operate a simulated machine from outside NVML: create it, inject faults, reset GPUs, inspect state.

This is the simulated equivalent of racking a server, pulling a GPU off the bus (``lost``) or
resetting it. Tests, the sandbox and ``dra-gpu sim`` use it; driver code never does.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from nvml_sim import machine
from nvml_sim.abi import STATE_ENV
from nvml_sim.build import library_dir, library_path
from nvml_sim.machine import State
from nvml_sim.store import StateStore


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
        return self.store.read()

    def set_fault(self, gpu_index: int, fault: str | None) -> None:
        with self.store.mutate() as st:
            machine.set_fault(machine.gpu_at(st, gpu_index), fault)

    def reset_gpu(self, gpu_index: int) -> None:
        with self.store.mutate() as st:
            machine.reset_gpu(machine.gpu_at(st, gpu_index))

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
