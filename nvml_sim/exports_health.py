"""Exported NVML symbols: telemetry and health of a GPU (temperature, power, clocks, utilisation, ECC, VBIOS,
modes, PCIe link, processes, NVLink fabric). The values are the idle readings of ``telemetry.py``; ECC counts
are the machine's (``events.py``). These answer for physical GPUs: a MIG device handle is NOT_SUPPORTED.
"""

from __future__ import annotations

from typing import Any

from nvml_sim import abi, codes, events
from nvml_sim.abi import export, need, put, put_str
from nvml_sim.machine import NvmlFault
from nvml_sim.telemetry import power_usage_mw, telemetry, temperature_c

TEMPERATURE_GPU = 0
ENABLED, DISABLED = 1, 0
PSTATE_0 = 0
VIRTUALIZATION_NONE = 0
MEMORY_LOCATION_DEVICE_MEMORY = 2  # NVML_MEMORY_LOCATION_DRAM / _DEVICE_MEMORY
FABRIC_STATE_COMPLETED = 3
FABRIC_HEALTH_SUMMARY_HEALTHY = 1


@export()
def nvmlDeviceGetTemperature(handle: Any, sensor: int, out: Any) -> None:
    need(out)
    gpu = abi.gpu_device(handle)
    if sensor != TEMPERATURE_GPU:
        raise NvmlFault(codes.INVALID_ARGUMENT)
    put(out, temperature_c(gpu))


@export()
def nvmlDeviceGetTemperatureThreshold(handle: Any, threshold: int, out: Any) -> None:
    """Shutdown, slowdown, memory max and GPU max (NVML_TEMPERATURE_THRESHOLD_* 0-3); others NOT_SUPPORTED."""
    need(out)
    t = telemetry(abi.gpu_device(handle))
    values = {0: t.shutdown_temp_c, 1: t.slowdown_temp_c, 2: t.mem_max_temp_c, 3: t.gpu_max_temp_c}
    if threshold not in values:
        raise NvmlFault(codes.NOT_SUPPORTED)
    put(out, values[threshold])


@export()
def nvmlDeviceGetPowerUsage(handle: Any, out: Any) -> None:
    need(out)
    put(out, power_usage_mw(abi.gpu_device(handle)))


@export(aliases=("nvmlDeviceGetPowerManagementDefaultLimit", "nvmlDeviceGetEnforcedPowerLimit"))
def nvmlDeviceGetPowerManagementLimit(handle: Any, out: Any) -> None:
    need(out)
    put(out, telemetry(abi.gpu_device(handle)).power_limit_w * 1000)


@export()
def nvmlDeviceGetPowerManagementLimitConstraints(handle: Any, low: Any, high: Any) -> None:
    need(low, high)
    t = telemetry(abi.gpu_device(handle))
    low[0], high[0] = t.min_power_limit_w * 1000, t.power_limit_w * 1000


@export(aliases=("nvmlDeviceGetPersistenceMode",))
def nvmlDeviceGetPowerManagementMode(handle: Any, out: Any) -> None:
    """Power management is on, and so is persistence mode (datacenter hosts run nvidia-persistenced)."""
    need(out)
    abi.gpu_device(handle)
    put(out, ENABLED)


@export(aliases=("nvmlDeviceGetPerformanceState",))
def nvmlDeviceGetPowerState(handle: Any, out: Any) -> None:
    need(out)
    abi.gpu_device(handle)
    put(out, PSTATE_0)


@export()
def nvmlDeviceGetUtilizationRates(handle: Any, out: Any) -> None:
    need(out)
    abi.gpu_device(handle)
    abi.fill(out, gpu=0, memory=0)


def _clock(handle: Any, clock_type: int, out: Any, maximum: bool) -> None:
    need(out)
    t = telemetry(abi.gpu_device(handle))
    clocks = t.max_clocks_mhz if maximum else t.idle_clocks_mhz
    if not 0 <= clock_type < len(clocks):
        raise NvmlFault(codes.INVALID_ARGUMENT)
    put(out, clocks[clock_type])


@export()
def nvmlDeviceGetClockInfo(handle: Any, clock_type: int, out: Any) -> None:
    _clock(handle, clock_type, out, maximum=False)


@export()
def nvmlDeviceGetMaxClockInfo(handle: Any, clock_type: int, out: Any) -> None:
    _clock(handle, clock_type, out, maximum=True)


@export()
def nvmlDeviceGetEccMode(handle: Any, current: Any, pending: Any) -> None:
    need(current, pending)
    abi.gpu_device(handle)
    current[0], pending[0] = ENABLED, ENABLED


@export()
def nvmlDeviceGetDefaultEccMode(handle: Any, out: Any) -> None:
    need(out)
    abi.gpu_device(handle)
    put(out, ENABLED)


def _ecc(handle: Any, error_type: int, counter_type: int) -> int:
    gpu = abi.gpu_device(handle)
    if error_type not in (0, 1) or counter_type not in (0, 1):
        raise NvmlFault(codes.INVALID_ARGUMENT)
    return events.ecc_counts(gpu, aggregate=counter_type == 1)[error_type]


@export()
def nvmlDeviceGetTotalEccErrors(handle: Any, error_type: int, counter_type: int, out: Any) -> None:
    need(out)
    put(out, _ecc(handle, error_type, counter_type))


@export()
def nvmlDeviceGetDetailedEccErrors(handle: Any, error_type: int, counter_type: int, out: Any) -> None:
    need(out)
    abi.fill(out, l1Cache=0, l2Cache=0, deviceMemory=_ecc(handle, error_type, counter_type), registerFile=0)


@export()
def nvmlDeviceGetMemoryErrorCounter(handle: Any, error_type: int, counter_type: int, location: int, out: Any) -> None:
    """Every simulated memory error is in device memory; the other locations count none."""
    need(out)
    count = _ecc(handle, error_type, counter_type)
    put(out, count if location == MEMORY_LOCATION_DEVICE_MEMORY else 0)


@export()
def nvmlDeviceGetVbiosVersion(handle: Any, buf: Any, length: int) -> None:
    put_str(buf, length, telemetry(abi.gpu_device(handle)).vbios)


@export()
def nvmlDeviceGetVirtualizationMode(handle: Any, out: Any) -> None:
    need(out)
    abi.gpu_device(handle)
    put(out, VIRTUALIZATION_NONE)


@export()
def nvmlDeviceGetModuleId(handle: Any, out: Any) -> None:
    """SXM modules are numbered 1..8 on their baseboard; a PCIe card is module 1 of its own."""
    need(out)
    gpu = abi.gpu_device(handle)
    put(out, gpu["index"] + 1 if telemetry(gpu).sxm else 1)


@export(aliases=("nvmlDeviceGetMaxPcieLinkGeneration",))
def nvmlDeviceGetCurrPcieLinkGeneration(handle: Any, out: Any) -> None:
    need(out)
    put(out, telemetry(abi.gpu_device(handle)).pcie_generation)


@export(aliases=("nvmlDeviceGetMaxPcieLinkWidth",))
def nvmlDeviceGetCurrPcieLinkWidth(handle: Any, out: Any) -> None:
    need(out)
    put(out, telemetry(abi.gpu_device(handle)).pcie_width)


@export(
    aliases=tuple(
        f"nvmlDeviceGet{kind}RunningProcesses{version}"
        for kind in ("Compute", "Graphics", "MPSCompute")
        for version in ("", "_v2", "_v3")
    )[1:]
)
def nvmlDeviceGetComputeRunningProcesses(handle: Any, count: Any, infos: Any) -> None:
    """No process runs on a simulated GPU: the count is 0 whatever the buffer (MIG devices answer too)."""
    need(count)
    abi.device(handle)
    count[0] = 0


def _fabric(handle: Any) -> None:
    """H100-class GPUs on an NVSwitch fabric report a completed, healthy registration; others NOT_SUPPORTED."""
    if not telemetry(abi.gpu_device(handle)).nvlink_fabric:
        raise NvmlFault(codes.NOT_SUPPORTED)


@export()
def nvmlDeviceGetGpuFabricInfo(handle: Any, out: Any) -> None:
    need(out)
    _fabric(handle)
    abi.fill(out, status=codes.SUCCESS, cliqueId=0, state=FABRIC_STATE_COMPLETED)


@export()
def nvmlDeviceGetGpuFabricInfoV(handle: Any, out: Any) -> None:
    need(out)
    versions = {abi.ffi.sizeof(f"nvmlGpuFabricInfo_v{v}_t") | v << 24: v for v in (2, 3)}
    if out.version not in versions:
        raise NvmlFault(codes.ARGUMENT_VERSION_MISMATCH)
    _fabric(handle)
    abi.fill(out, status=codes.SUCCESS, cliqueId=0, state=FABRIC_STATE_COMPLETED, healthMask=0)
    if versions[out.version] == 3:  # v2 is v3 without this last field
        out.healthSummary = FABRIC_HEALTH_SUMMARY_HEALTHY


@export()
def nvmlDeviceGetGpuFabricInfo_v4(handle: Any, out: Any) -> None:
    need(out)
    _fabric(handle)
    abi.fill(
        out,
        status=codes.SUCCESS,
        numCliques=0,
        state=FABRIC_STATE_COMPLETED,
        healthMask=0,
        healthSummary=FABRIC_HEALTH_SUMMARY_HEALTHY,
    )
