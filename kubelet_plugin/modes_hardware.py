"""What changing a GPU's mode does to the hardware: MIG mode on/off, GPU reset, static MIG layouts.

``ModeHardware`` is the interface; ``NvmlModeHardware`` implements it with NVML (MIG mode through
``dra_driver.nvml.settings``, GPU instances through ``dra_driver.nvml.mig``) and the driver root's
``nvidia-smi --gpu-reset -i <uuid>`` (NVML has no reset call); ``tests/kubelet_plugin/test_modes_watch.py`` drives
it against the simulated NVML and driver root. A missing ``nvidia-smi`` makes a needed reset fail with
``ToolMissing``, which the caller reports as ResetRequired. ``create_layout`` is all or nothing: when one instance
cannot be made, those made before it are destroyed again before the error propagates.
"""

from __future__ import annotations

import logging
import subprocess
from typing import Protocol

from dra_driver.inventory import MigProfile
from dra_driver.nvml import mig, settings
from dra_driver.nvml.discovery import mig_profiles
from dra_driver.nvml.session import Nvml
from kubelet_plugin.sharing import NVIDIA_SMI, TOOL_TIMEOUT_S, DriverTools, ToolFailed

log = logging.getLogger(__name__)


class ModeHardware(Protocol):
    """Errors: one of ``kubelet_plugin.hardware.HARDWARE_ERRORS``."""

    def mig_mode(self, gpu_index: int) -> tuple[bool, bool]:
        """(current, pending) MIG mode."""
        ...

    def set_mig_mode(self, gpu_index: int, enabled: bool) -> None: ...

    def reset(self, gpu_index: int, gpu_uuid: str) -> None: ...

    def clear_instances(self, gpu_index: int) -> int:
        """Destroy every GPU instance (with its compute instances); returns how many there were."""
        ...

    def create_layout(self, gpu_index: int, layout: tuple[tuple[str, int], ...]) -> None: ...

    def mig_profiles(self, gpu_index: int) -> tuple[MigProfile, ...]:
        """The GPU-instance profiles the GPU offers; NVML lists them only while MIG mode is on."""
        ...


class NvmlModeHardware:
    def __init__(self, nvml: Nvml, tools: DriverTools) -> None:
        self.nvml = nvml
        self.tools = tools

    def mig_mode(self, gpu_index: int) -> tuple[bool, bool]:
        return settings.mig_mode(self.nvml, gpu_index)

    def set_mig_mode(self, gpu_index: int, enabled: bool) -> None:
        activation = settings.set_mig_mode(self.nvml, gpu_index, enabled)
        log.info("MIG mode of GPU %d set %s (activation status %s)", gpu_index, "on" if enabled else "off", activation)

    def reset(self, gpu_index: int, gpu_uuid: str) -> None:
        smi = self.tools.path(NVIDIA_SMI, f"the reset of GPU {gpu_index} for its MIG mode change")
        argv = [str(smi), "--gpu-reset", "-i", gpu_uuid]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=self.tools.env())
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip().splitlines()
            raise ToolFailed(f"{' '.join(argv[1:])} failed ({done.returncode}): {output[-1] if output else ''}")
        log.info("GPU %d (%s) reset", gpu_index, gpu_uuid)

    def clear_instances(self, gpu_index: int) -> int:
        found = mig.gpu_instances(self.nvml, gpu_index)
        for gi_id, _, _ in found:
            mig.destroy_partition(self.nvml, gpu_index, gi_id)
        return len(found)

    def mig_profiles(self, gpu_index: int) -> tuple[MigProfile, ...]:
        return mig_profiles(self.nvml, self.nvml.device(gpu_index))

    def create_layout(self, gpu_index: int, layout: tuple[tuple[str, int], ...]) -> None:
        made: list[int] = []
        try:
            for profile, start in layout:
                made.append(mig.create_partition(self.nvml, gpu_index, profile, start).gpu_instance_id)
        except BaseException:
            for gi_id in reversed(made):
                mig.destroy_partition(self.nvml, gpu_index, gi_id)
            raise
