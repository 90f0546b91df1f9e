"""What an idle GPU of each simulated model reports besides its identity: power, temperature, clocks, VBIOS,
reserved memory, PCIe link, NVLink. Pure.

The numbers are plausible values for an idle GPU of the model (board power limits, thermal limits and clocks
from the models' public specifications; idle readings, reserved memory and VBIOS versions typical of what
``nvidia-smi -q`` shows), not measurements of one board: a test may rely on them being stable and within the
limits, not on them matching a particular GPU. Readings vary slightly by GPU index so that GPUs differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from nvml_sim.machine import Gpu, model_of


@dataclass(frozen=True)
class Telemetry:
    power_limit_w: int  # default = enforced board power limit
    min_power_limit_w: int
    idle_power_w: int
    idle_temp_c: int
    shutdown_temp_c: int
    slowdown_temp_c: int
    gpu_max_temp_c: int
    mem_max_temp_c: int
    vbios: str
    reserved_mib: int  # device memory the driver and firmware set aside (nvmlMemory_v2_t.reserved)
    max_clocks_mhz: tuple[int, int, int, int]  # graphics, SM, memory, video (nvmlClockType_t order)
    idle_clocks_mhz: tuple[int, int, int, int]
    pcie_generation: int
    pcie_width: int
    nvlink: bool  # GPUs of the machine reach each other over NVLink (SXM boards)
    nvlink_fabric: bool  # NVSwitch fabric managed by the fabric manager: nvmlDeviceGetGpuFabricInfo answers
    sxm: bool  # an SXM module on a baseboard (module ids 1..8); else a PCIe card


TELEMETRY: dict[str, Telemetry] = {
    "A100-SXM4-40GB": Telemetry(
        400, 100, 56, 31, 92, 89, 85, 95, "92.00.19.00.10", 425,
        (1410, 1410, 1215, 1275), (210, 210, 1215, 795), 4, 16, True, False, True,
    ),
    "A100-SXM4-80GB": Telemetry(
        400, 100, 62, 32, 92, 89, 85, 95, "92.00.36.00.02", 552,
        (1410, 1410, 1593, 1275), (210, 210, 1593, 795), 4, 16, True, False, True,
    ),
    "A30-24GB": Telemetry(
        165, 100, 33, 30, 95, 92, 90, 95, "92.00.66.00.01", 338,
        (1440, 1440, 1215, 1305), (210, 210, 1215, 795), 4, 16, False, False, False,
    ),
    "H100-SXM5-80GB": Telemetry(
        700, 200, 71, 29, 92, 89, 87, 95, "96.00.99.00.01", 579,
        (1980, 1980, 2619, 1755), (345, 345, 2619, 765), 5, 16, True, True, True,
    ),
    "L4-24GB": Telemetry(
        72, 40, 16, 35, 96, 93, 90, 95, "95.04.5B.00.00", 294,
        (2040, 2040, 6251, 1770), (210, 210, 405, 795), 4, 16, False, False, False,
    ),
}  # fmt: skip


def telemetry(gpu: Gpu) -> Telemetry:
    return TELEMETRY[model_of(gpu).key]


def power_usage_mw(gpu: Gpu) -> int:
    index = int(gpu["index"])
    return (telemetry(gpu).idle_power_w + index % 3) * 1000 + 137 * (index % 5)


def temperature_c(gpu: Gpu) -> int:
    return telemetry(gpu).idle_temp_c + int(gpu["index"]) % 4
