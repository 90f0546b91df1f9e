"""NVML's event API on the simulated machine: what is injected (in any process) is delivered once, in order."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynvml
import pytest

from nvml_sim import events
from nvml_sim.control import SimulatedMachine
from tests.conftest import MachineFactory

XID_AND_ECC = pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeDoubleBitEccError


@pytest.fixture
def event_set() -> Iterator[Any]:
    created: list[Any] = []

    def make() -> Any:
        created.append(pynvml.nvmlEventSetCreate())
        return created[-1]

    yield make
    for s in created:
        pynvml.nvmlEventSetFree(s)


def registered(event_set: Any, gpu: int, types: int = XID_AND_ECC) -> Any:
    s = event_set()
    pynvml.nvmlDeviceRegisterEvents(pynvml.nvmlDeviceGetHandleByIndex(gpu), types, s)
    return s


def address(handle: Any) -> int | None:
    return ctypes.cast(handle, ctypes.c_void_p).value


def delivered(s: Any, timeout_ms: int = 5000) -> tuple[int, int, int]:
    data = pynvml.nvmlEventSetWait(s, timeout_ms)
    return pynvml.nvmlDeviceGetIndex(data.device), data.eventType, data.eventData


def test_a_wait_with_nothing_to_deliver_times_out_after_the_timeout(machine: MachineFactory, event_set: Any) -> None:
    machine("single-a100")
    s = registered(event_set, 0)
    started = time.monotonic()
    with pytest.raises(pynvml.NVMLError_Timeout):
        pynvml.nvmlEventSetWait(s, 300)
    assert 0.29 <= time.monotonic() - started < 2.0
    with pytest.raises(pynvml.NVMLError_Timeout):
        pynvml.nvmlEventSetWait(s, 0)


def test_an_xid_injected_by_dra_gpu_sim_in_another_process_wakes_the_waiter(
    machine: MachineFactory, event_set: Any
) -> None:
    sim = machine("dgx-a100")
    s = registered(event_set, 5)
    cli = "import sys; from cli.main import main; sys.exit(main(sys.argv[1:]))"
    args = [sys.executable, "-c", cli, "sim", "xid", str(sim.state_path), "--gpu", "5", "63"]
    injector = threading.Timer(0.4, lambda: subprocess.run(args, check=True, timeout=60))
    injector.start()
    started = time.monotonic()
    try:
        assert delivered(s, 30_000) == (5, pynvml.nvmlEventTypeXidCriticalError, 63)
    finally:
        injector.join()
    assert time.monotonic() - started >= 0.4
    with pytest.raises(pynvml.NVMLError_Timeout):  # each event is delivered once
        pynvml.nvmlEventSetWait(s, 100)


def test_a_lost_gpu_reports_xid_79_and_clearing_the_fault_forgets_its_events(
    machine: MachineFactory, event_set: Any
) -> None:
    sim = machine("dgx-a100")
    s = registered(event_set, 2)
    sim.set_fault(2, "lost")
    data = pynvml.nvmlEventSetWait(s, 5000)  # its handle now answers GPU_IS_LOST, as a real lost GPU's does
    assert address(data.device) == address(pynvml.nvmlDeviceGetHandleByIndex(2))
    assert (data.eventType, data.eventData) == (pynvml.nvmlEventTypeXidCriticalError, events.XID_FELL_OFF_THE_BUS)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetIndex(data.device)
    assert [(e.gpu, e.data) for e in sim.events()] == [(2, 79)]
    sim.set_fault(2, None)
    assert sim.events() == []
    assert pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(2)).startswith("NVIDIA")


def test_a_double_bit_ecc_error_is_counted_and_reported_with_xid_48(machine: MachineFactory, event_set: Any) -> None:
    sim = machine("dgx-h100")
    s = registered(event_set, 1)
    h = pynvml.nvmlDeviceGetHandleByIndex(1)
    sim.inject_ecc_error(1, uncorrected=True)
    assert delivered(s) == (1, pynvml.nvmlEventTypeDoubleBitEccError, 0)
    assert delivered(s) == (1, pynvml.nvmlEventTypeXidCriticalError, events.XID_DOUBLE_BIT_ECC)
    uncorrected, volatile, aggregate = 1, 0, 1
    assert pynvml.nvmlDeviceGetTotalEccErrors(h, uncorrected, volatile) == 1
    sim.reset_gpu(1)
    assert pynvml.nvmlDeviceGetTotalEccErrors(h, uncorrected, volatile) == 0
    assert pynvml.nvmlDeviceGetTotalEccErrors(h, uncorrected, aggregate) == 1


def test_only_registered_types_of_registered_gpus_after_registration_are_delivered(
    machine: MachineFactory, event_set: Any
) -> None:
    sim = machine("dgx-a100")
    sim.inject_xid(0, 13)  # before anyone registered
    s = registered(event_set, 0, pynvml.nvmlEventTypeXidCriticalError)
    sim.inject_ecc_error(0, uncorrected=False)  # single-bit: not registered
    sim.inject_xid(1, 31)  # another GPU
    sim.inject_xid(0, 43, gpu_instance=3)
    data = pynvml.nvmlEventSetWait(s, 1000)
    assert (data.eventType, data.eventData, data.gpuInstanceId, data.computeInstanceId) == (8, 43, 3, 0xFFFFFFFF)
    with pytest.raises(pynvml.NVMLError_Timeout):
        pynvml.nvmlEventSetWait(s, 50)


def test_event_types_a_gpu_cannot_deliver_and_mig_device_handles_are_not_supported(
    machine: MachineFactory, event_set: Any
) -> None:
    machine("l4")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    supported = pynvml.nvmlDeviceGetSupportedEventTypes(h)
    assert supported & XID_AND_ECC == XID_AND_ECC
    assert not supported & pynvml.nvmlEventMigConfigChange  # no MIG on an L4
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceRegisterEvents(h, pynvml.nvmlEventMigConfigChange, event_set())


def test_a_freed_event_set_is_an_invalid_argument(machine: MachineFactory) -> None:
    machine("single-a100")
    s = pynvml.nvmlEventSetCreate()
    pynvml.nvmlEventSetFree(s)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlEventSetWait(s, 0)


def test_clear_events_forgets_recorded_events_and_numbers_go_on(machine: MachineFactory, event_set: Any) -> None:
    sim = machine("dgx-a100")
    s = registered(event_set, 4)
    first = sim.inject_xid(4, 62)
    sim.clear_events(4)
    with pytest.raises(pynvml.NVMLError_Timeout):
        pynvml.nvmlEventSetWait(s, 50)
    assert sim.inject_xid(4, 64) == first + 1
    assert delivered(s)[2] == 64
    sim.clear_events()
    assert sim.events() == []


def test_a_state_file_from_before_events_takes_them(machine: MachineFactory, tmp_path: Path) -> None:
    sim = machine("single-a100", init=False)
    old = json.loads(sim.state_path.read_text())
    for key in ("events", "eventSeq"):
        del old[key]
    for gpu in old["gpus"]:
        del gpu["ecc"]
    old["version"] = 1
    v1 = SimulatedMachine(tmp_path / "v1.json")
    v1.store.replace(old)
    v1.activate()
    pynvml.nvmlInit()
    try:
        s = pynvml.nvmlEventSetCreate()
        pynvml.nvmlDeviceRegisterEvents(pynvml.nvmlDeviceGetHandleByIndex(0), XID_AND_ECC, s)
        with pytest.raises(pynvml.NVMLError_Timeout):
            pynvml.nvmlEventSetWait(s, 20)
        v1.inject_ecc_error(0)
        assert delivered(s)[1] == pynvml.nvmlEventTypeDoubleBitEccError
        assert pynvml.nvmlDeviceGetTotalEccErrors(pynvml.nvmlDeviceGetHandleByIndex(0), 1, 1) == 1
        pynvml.nvmlEventSetFree(s)
    finally:
        pynvml.nvmlShutdown()
