"""GPU sharing settings: time-slice intervals and MPS, applied per GPU and undone by the last user.

The time-slice interval is a GPU-wide setting (``nvidia-smi compute-policy --set-timeslice``): claims
sharing a GPU must agree on it. Where ``nvidia-smi`` is absent (the sandbox's simulated GPUs) the
interval is recorded in a state file instead, so the same logic is exercised and observable.
MPS puts the GPU in EXCLUSIVE_PROCESS compute mode (through NVML) and hands each claim its MPS pipe
directory and limits through CDI environment variables. Starting the MPS control daemon itself
(``nvidia-cuda-mps-control``) is not implemented yet: on a real GPU a claim with MPS sharing gets the
settings but no daemon.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)
INTERVALS = {"Default": 0, "Short": 1, "Medium": 2, "Long": 3}


class TimeSlicer(Protocol):
    def set_interval(self, gpu_uuid: str, interval: str) -> None: ...
    def interval(self, gpu_uuid: str) -> str: ...


class NvidiaSmiTimeSlicer:
    def set_interval(self, gpu_uuid: str, interval: str) -> None:
        subprocess.run(
            ["nvidia-smi", "compute-policy", "-i", gpu_uuid, f"--set-timeslice={INTERVALS[interval]}"],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def interval(self, gpu_uuid: str) -> str:
        return "unknown"


class RecordingTimeSlicer:
    """Keeps intervals in a JSON file (for GPUs without nvidia-smi: the simulated ones)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # claims on different GPUs update the one file concurrently

    def _read(self) -> dict[str, str]:
        data: dict[str, str] = json.loads(self.path.read_text()) if self.path.exists() else {}
        return data

    def set_interval(self, gpu_uuid: str, interval: str) -> None:
        with self._lock:
            data = self._read()
            if interval == "Default":
                data.pop(gpu_uuid, None)
            else:
                data[gpu_uuid] = interval
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, sort_keys=True))
            tmp.replace(self.path)

    def interval(self, gpu_uuid: str) -> str:
        with self._lock:
            return self._read().get(gpu_uuid, "Default")


def choose_time_slicer(state_dir: Path) -> TimeSlicer:
    if shutil.which("nvidia-smi"):
        return NvidiaSmiTimeSlicer()
    log.info("nvidia-smi not found: time-slice intervals are recorded in %s/timeslice.json", state_dir)
    return RecordingTimeSlicer(state_dir / "timeslice.json")


@dataclass(frozen=True)
class TimeSliceUse:
    claim_uid: str
    gpu_uuid: str
    interval: str


class IntervalConflict(Exception):
    pass


def check_interval(uses: Iterable[TimeSliceUse], gpu_uuid: str, interval: str, claim_uid: str) -> None:
    """Refuse a claim whose interval differs from the one other claims on the GPU use."""
    others = [u for u in uses if u.gpu_uuid == gpu_uuid and u.claim_uid != claim_uid]
    conflicting = sorted({u.interval for u in others if u.interval != interval})
    if conflicting:
        raise IntervalConflict(
            f"GPU {gpu_uuid} is time-sliced with interval {conflicting[0]} by {len({u.claim_uid for u in others})} "
            "other claim(s); "
            f"this claim asks for {interval}: use the same interval or a different GPU"
        )
