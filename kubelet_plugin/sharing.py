"""The driver's tools under ``--driver-root`` and the GPU-wide time-slice interval they set.

``DriverTools`` holds the programs the plugin runs to change GPU settings NVML cannot: ``nvidia-smi`` (the
time-slice interval) and ``nvidia-cuda-mps-control`` (MPS, see ``mps.py``). They are the driver root's own
files (``dra_driver.driver_root``), never whatever ``PATH`` finds, and run with the driver root's library
directory first on ``LD_LIBRARY_PATH``. A tool that is missing is never replaced by something else: a claim
that needs it is refused with ``ToolMissing``, naming the file (fail closed).

The interval (``nvidia-smi compute-policy -i <uuid> --set-timeslice <n>``, 0=DEFAULT, 1=SHORT, 2=MEDIUM,
3=LONG) is a GPU-wide setting: claims sharing a GPU must agree on it (``check_interval``, used by the planner).
It is read back with ``nvidia-smi compute-policy -i <uuid> -l`` (``parse_interval``), so start-up repair resets
only a GPU whose interval is really off the default. The options are those ``nvidia-smi compute-policy --help``
lists; the *output* of ``-l`` is documented nowhere public and has not been seen from a real driver here, so the
parser is loose (docs/kubelet-plugin.md) and output it cannot read is ``UNKNOWN`` with a warning, never a guess.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dra_driver import errors
from dra_driver.driver_root import BINARY_DIRS, DriverFiles

log = logging.getLogger(__name__)
INTERVALS = {"Default": 0, "Short": 1, "Medium": 2, "Long": 3}  # nvidia-smi compute-policy --set-timeslice
UNKNOWN = "unknown"
NVIDIA_SMI = "nvidia-smi"
MPS_CONTROL = "nvidia-cuda-mps-control"
TOOL_TIMEOUT_S = 30.0


class ToolMissing(errors.RecoverableError):
    """A claim needs a driver tool that is not installed under the driver root."""


class ToolFailed(errors.RecoverableError):
    """A driver tool ran and failed (its exit code and output are in the message)."""


@dataclass(frozen=True)
class DriverTools:
    """Where the driver's tools are, as the plugin runs them."""

    root: Path  # the driver root, as the plugin sees it
    binaries: Mapping[str, Path]  # name -> file, only those present
    library_dir: Path | None = None  # the driver's libraries (libnvidia-ml, libcuda): first on LD_LIBRARY_PATH

    @classmethod
    def of(cls, files: DriverFiles) -> DriverTools:
        return cls(
            files.root,
            {name: files.local(f.real) for name, f in files.binaries},
            files.nvml_library.parent,
        )

    def path(self, name: str, purpose: str) -> Path:
        """The tool's file; ``ToolMissing`` (naming the files looked for) when the driver root has none."""
        found = self.binaries.get(name)
        if found is not None:
            return found
        raise ToolMissing(self.missing(name, purpose))

    def missing(self, name: str, purpose: str) -> str:
        looked = " and ".join(str(self.root / d / name) for d in BINARY_DIRS)
        return (
            f"{purpose} needs {name}, which the NVIDIA driver under {self.root} does not have ({looked} not found): "
            f"install the driver's utilities there (or point --driver-root at a complete driver), or use a device "
            "without this sharing setting"
        )

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The plugin's environment with the driver's libraries first and the tools' directory first on PATH."""
        env = dict(os.environ)
        if self.library_dir is not None:
            env["LD_LIBRARY_PATH"] = ":".join(p for p in (str(self.library_dir), env.get("LD_LIBRARY_PATH")) if p)
        bins = sorted({str(p.parent) for p in self.binaries.values()})
        env["PATH"] = ":".join([*bins, env.get("PATH", os.defpath)])
        env.update(extra or {})
        return env

    def run(
        self,
        name: str,
        purpose: str,
        args: list[str],
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        detaches: bool = False,
    ) -> str:
        """Run the tool; its output, or ``ToolFailed`` with what it said. ``detaches``: the tool leaves a daemon
        behind, which must not hold our pipes open (its output goes through a file) nor share our session."""
        argv = [str(self.path(name, purpose)), *args]
        with tempfile.TemporaryFile() as out:
            done = subprocess.run(
                argv,
                input=stdin.encode() if stdin is not None else None,
                stdin=subprocess.DEVNULL if stdin is None else None,
                stdout=out if detaches else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=TOOL_TIMEOUT_S,
                env=self.env(env),
                start_new_session=detaches,
                check=False,
            )
            out.seek(0)
            said = (out.read() if detaches else done.stdout or b"").decode(errors="replace")
        if done.returncode != 0:
            said = (said.strip() or "no output")[-500:]
            raise ToolFailed(f"{' '.join([name, *args])} failed for {purpose} (exit code {done.returncode}): {said}")
        return said


_WORDS = {name.upper(): name for name in INTERVALS}


def parse_interval(output: str) -> str:
    """The interval in ``nvidia-smi compute-policy -l`` output for one GPU: after the word "timeslice" on the first
    line that has it, the interval's name (DEFAULT, SHORT, MEDIUM, LONG) or number (0..3); ``UNKNOWN`` when none."""
    numbers = {str(v): k for k, v in INTERVALS.items()}
    for line in output.splitlines():
        at = line.lower().find("timeslice")
        if at < 0:
            continue
        for token in re.findall(r"[A-Za-z]+|\d+", line[at + len("timeslice") :]):
            if token.upper() in _WORDS:
                return _WORDS[token.upper()]
            if token in numbers:
                return numbers[token]
    return UNKNOWN


class TimeSlicer:
    """The GPU-wide time-slice interval through the driver root's ``nvidia-smi``."""

    def __init__(self, tools: DriverTools) -> None:
        self.tools = tools

    def available(self) -> bool:
        return NVIDIA_SMI in self.tools.binaries

    def set_interval(self, gpu_uuid: str, interval: str) -> None:
        args = ["compute-policy", "-i", gpu_uuid, "--set-timeslice", str(INTERVALS[interval])]
        self.tools.run(NVIDIA_SMI, f"the {interval} time-slice interval", args)
        log.info("time-slice interval of GPU %s set to %s", gpu_uuid, interval)

    def interval(self, gpu_uuid: str) -> str:
        """The GPU's interval; ``UNKNOWN`` without ``nvidia-smi`` or when its answer names none."""
        if not self.available():
            return UNKNOWN
        out = self.tools.run(NVIDIA_SMI, "reading the time-slice interval", ["compute-policy", "-i", gpu_uuid, "-l"])
        interval = parse_interval(out)
        if interval == UNKNOWN:
            log.warning("nvidia-smi named no time-slice interval for GPU %s: %r", gpu_uuid, out[-300:])
        return interval


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
