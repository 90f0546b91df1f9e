"""Planning a claim: what the plugin will do per device, decided before anything changes."""

from __future__ import annotations

from typing import Any

import pynvml
import pytest

from dra_driver.inventory import Inventory
from dra_driver.kubeletplugin.protocol import ClaimRef
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from kubelet_plugin.hardware import HardwareOps
from kubelet_plugin.plan import ClaimRejected, Context, plan_claim
from kubelet_plugin.records import ClaimRecord, DeviceRecord, MigPartition, TimeSliceReplica
from kubelet_plugin.sharing import DriverTools
from tests.conftest import MachineFactory
from tests.nvml_sim.helpers import create_full_ci, create_gi

DRIVER = "gpu.dra-driver.dev"
REF = ClaimRef("ns", "uid-1", "claim")


def _claim(device: str, config: list[dict[str, Any]] | None = None, uid: str = "uid-1") -> dict[str, Any]:
    allocation = {
        "devices": {
            "results": [{"request": "gpu", "driver": DRIVER, "pool": "node", "device": device}],
            "config": config or [],
        }
    }
    return {"metadata": {"uid": uid, "name": "claim", "namespace": "ns"}, "status": {"allocation": allocation}}


def _inventory() -> Inventory:
    with Nvml() as nvml:
        return discover(nvml)


def test_dynamic_mig_plans_a_partition_to_create(machine: MachineFactory) -> None:
    machine("single-a100", init=False)
    ctx = Context(DRIVER, "node", _inventory(), "/tmp/mps")
    (record,) = plan_claim(ctx, REF, _claim("gpu-0-mig-3g-20gb-4"), [])
    assert record.hardware == MigPartition(record.hardware.gpu_uuid, 0, "3g.20gb", 4, 4)


def test_static_mig_uses_the_existing_device_and_never_destroys_it(machine: MachineFactory, tmp_path: Any) -> None:
    sim = machine("single-a100")
    create_full_ci(create_gi(pynvml.nvmlDeviceGetHandleByIndex(0), 9, 4, 4))
    inv = _inventory()
    (existing,) = inv.gpu(0).mig_devices
    ctx = Context(DRIVER, "node", inv, "/tmp/mps", dynamic_mig=False)
    (record,) = plan_claim(ctx, REF, _claim("gpu-0-mig-3g-20gb-4"), [])
    hw = record.hardware
    assert isinstance(hw, MigPartition) and not hw.created
    assert (hw.gpu_instance_id, hw.mig_uuid) == (existing.gpu_instance_id, existing.uuid)
    with Nvml() as nvml:
        ops = HardwareOps(nvml, DriverTools(tmp_path, {}), tmp_path / "mps")
        assert ops.apply(record) == record  # nothing to create
        ops.undo(record, [])
    assert sim.mig_partitions() == [(0, 1, 0)]  # the admin's partition is still there
    with pytest.raises(ClaimRejected, match="no longer exists"):
        plan_claim(ctx, REF, _claim("gpu-0-mig-3g-20gb-0"), [])


def test_conflicting_time_slice_interval_is_refused_naming_both(machine: MachineFactory) -> None:
    machine("single-a100", init=False)
    inv = _inventory()
    ctx = Context(DRIVER, "node", inv, "/tmp/mps")
    long_ = [
        {
            "source": "FromClaim",
            "requests": [],
            "opaque": {
                "driver": DRIVER,
                "parameters": {
                    "apiVersion": "gpu.dra-driver.dev/v1alpha1",
                    "kind": "GpuConfig",
                    "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Long"}},
                },
            },
        }
    ]
    other = ClaimRecord(
        ClaimRef("ns", "uid-0", "other"),
        "PrepareCompleted",
        (DeviceRecord(("gpu",), "node", "gpu-0-ts-0", TimeSliceReplica(inv.gpu(0).uuid, 0, "Short")),),
    )
    with pytest.raises(ClaimRejected, match=r"interval Short by 1 other claim.*asks for Long"):
        plan_claim(ctx, REF, _claim("gpu-0-ts-1", long_), [other])
    (ok,) = plan_claim(ctx, REF, _claim("gpu-0-ts-1", long_), [])
    assert ok.hardware == TimeSliceReplica(inv.gpu(0).uuid, 0, "Long")


def test_a_claim_for_another_node_or_a_stale_uid_is_refused(machine: MachineFactory) -> None:
    machine("single-a100", init=False)
    ctx = Context(DRIVER, "node", _inventory(), "/tmp/mps")
    foreign = _claim("gpu-0")
    foreign["status"]["allocation"]["devices"]["results"][0]["pool"] = "elsewhere"
    with pytest.raises(ClaimRejected, match="not this node"):
        plan_claim(ctx, REF, foreign, [])
    with pytest.raises(ClaimRejected, match="deleted and re-created"):
        plan_claim(ctx, REF, _claim("gpu-0", uid="uid-2"), [])


def test_a_claim_without_devices_of_this_driver_is_refused(machine: MachineFactory) -> None:
    machine("single-a100", init=False)
    ctx = Context(DRIVER, "node", _inventory(), "/tmp/mps")
    other = _claim("gpu-0")
    other["status"]["allocation"]["devices"]["results"][0]["driver"] = "nic.example.com"
    with pytest.raises(ClaimRejected, match=f"claim ns/claim has no devices allocated by driver {DRIVER}"):
        plan_claim(ctx, REF, other, [])


def test_mps_devices_get_the_pipe_directory_of_their_cuda_devices_daemon(machine: MachineFactory) -> None:
    """One daemon per CUDA device: a MIG device has its own, a GPU's shares and whole GPU share the GPU's."""
    machine("single-a100", init=False)
    ctx = Context(DRIVER, "node", _inventory(), "/var/lib/dra-gpu/mps")
    mps = [
        {
            "source": "FromClaim",
            "requests": [],
            "opaque": {
                "driver": DRIVER,
                "parameters": {
                    "apiVersion": "gpu.dra-driver.dev/v1alpha1",
                    "kind": kind,
                    "sharing": {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 10}},
                },
            },
        }
        for kind in ("GpuConfig",)
    ]
    for device in ("gpu-0-shared", "gpu-0-ts-1"):
        (record,) = plan_claim(ctx, REF, _claim(device, mps), [])
        assert record.mps is not None and record.mps.pipe_directory == "/var/lib/dra-gpu/mps/gpu-0"
        assert record.mps.control_daemon == "gpu-0" and record.mps.active_thread_percentage == 10
    mps[0]["opaque"]["parameters"]["kind"] = "MigDeviceConfig"
    (record,) = plan_claim(ctx, REF, _claim("gpu-0-mig-3g-20gb-4", mps), [])
    assert record.mps is not None and record.mps.pipe_directory == "/var/lib/dra-gpu/mps/gpu-0-mig-3g-20gb-4"
