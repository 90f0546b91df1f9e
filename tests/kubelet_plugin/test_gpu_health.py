"""GPU health as device taints: which events taint, with which effect, and when a taint clears."""

from __future__ import annotations

from dra_driver.nvml.events import GpuEvent
from dra_driver.resourceslice.model import Device, DeviceTaint
from dra_driver.resourceslice.render import device
from kubelet_plugin.gpu_health import GpuHealth

U = "GPU-1"


def health(quiet: float = 30) -> GpuHealth:
    return GpuHealth("gpu.example.com", quiet_s=quiet)


def test_a_fatal_xid_taints_no_schedule_and_makes_the_gpu_unhealthy() -> None:
    h = health()
    assert h.event(GpuEvent(U, "xid", 79), now=0, wall=1_700_000_000)
    assert h.taints(U) == (DeviceTaint("gpu.example.com/xid", "79", "NoSchedule", "2023-11-14T22:13:20Z"),)
    assert h.unhealthy_reason(U) == "gpu.example.com/xid=79"
    assert h.taints("GPU-2") == () and h.unhealthy_reason("GPU-2") == ""


def test_an_unknown_xid_is_informational_and_application_xids_are_ignored() -> None:
    h = health()
    assert not h.event(GpuEvent(U, "xid", 13), now=0)
    assert h.event(GpuEvent(U, "xid", 63), now=0)
    (taint,) = h.taints(U)
    assert (taint.value, taint.effect) == ("63", "None")
    assert h.unhealthy_reason(U) == ""


def test_double_bit_ecc_taints_and_single_bit_does_not() -> None:
    h = health()
    assert not h.event(GpuEvent(U, "ecc-single-bit"), now=0)
    assert h.event(GpuEvent(U, "ecc-double-bit"), now=0)
    assert [(t.key, t.value, t.effect) for t in h.taints(U)] == [("gpu.example.com/ecc", "double-bit", "NoSchedule")]


def test_a_taint_clears_after_the_quiet_period_while_the_gpu_answers_and_a_recurring_fault_keeps_it() -> None:
    h = health(quiet=30)
    h.event(GpuEvent(U, "xid", 48), now=0, wall=100)
    assert not h.recover([U], now=20)
    assert h.event(GpuEvent(U, "xid", 48), now=25, wall=125) is False  # the same condition again: no change
    assert h.taints(U)[0].time_added == "1970-01-01T00:01:40Z"  # kept from the first event
    assert not h.recover([U], now=50)  # 25 s since the last one
    assert not h.recover([], now=100)  # not answering NVML: not recovered
    assert h.recover([U], now=100)
    assert h.taints(U) == ()


def test_taints_are_rendered_with_the_time_the_driver_set() -> None:
    d = Device("gpu-0", (), (), taints=(DeviceTaint("k.io/xid", "79", "NoSchedule", "2026-01-01T00:00:00Z"),))
    assert device(d, "v1")["taints"] == [
        {"key": "k.io/xid", "value": "79", "effect": "NoSchedule", "timeAdded": "2026-01-01T00:00:00Z"}
    ]
    assert device(d, "v1beta1")["basic"]["taints"][0]["effect"] == "NoSchedule"
