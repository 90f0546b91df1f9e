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


def _mps(kind: str = "GpuConfig") -> list[dict[str, Any]]:
    sharing = {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 50}}
    parameters = {"apiVersion": "gpu.dra-driver.dev/v1alpha1", "kind": kind, "sharing": sharing}
    return [{"source": "FromClaim", "requests": [], "opaque": {"driver": DRIVER, "parameters": parameters}}]


def _claim_of(devices: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A claim with one request per device, each request with its own config (``[]``: none)."""
    results = [{"request": f"r{i}", "driver": DRIVER, "pool": "node", "device": d} for i, d in enumerate(devices)]
    config = [{**entry, "requests": [f"r{i}"]} for i, entries in enumerate(devices.values()) for entry in entries]
    claim = _claim("gpu-0")
    claim["status"]["allocation"]["devices"] = {"results": results, "config": config}
    return claim


def test_a_claim_with_devices_of_two_mps_daemons_is_refused_naming_them(machine: MachineFactory) -> None:
    machine("dgx-a100", init=False)
    ctx = Context(DRIVER, "node", _inventory(), "/mps")
    with pytest.raises(ClaimRejected, match=r"gpu-0-shared, gpu-1-shared are served by different MPS control daemons"):
        plan_claim(ctx, REF, _claim_of({"gpu-0-shared": _mps(), "gpu-1-shared": _mps()}), [])
    with pytest.raises(ClaimRejected, match="gpu-0-mig-1g-5gb-0, gpu-0-mig-1g-5gb-1 are served by different"):
        mig = _mps("MigDeviceConfig")
        plan_claim(ctx, REF, _claim_of({"gpu-0-mig-1g-5gb-0": mig, "gpu-0-mig-1g-5gb-1": mig}), [])
    two_replicas = plan_claim(ctx, REF, _claim_of({"gpu-2-ts-0": _mps(), "gpu-2-ts-1": _mps()}), [])
    assert {r.mps.control_daemon for r in two_replicas if r.mps} == {"gpu-2"}  # one daemon: accepted


def test_a_claim_mixing_an_mps_device_with_one_without_mps_is_refused(machine: MachineFactory) -> None:
    machine("dgx-a100", init=False)
    ctx = Context(DRIVER, "node", _inventory(), "/mps")
    with pytest.raises(ClaimRejected, match=r"gpu-0-shared use MPS and gpu-1 do not"):
        plan_claim(ctx, REF, _claim_of({"gpu-0-shared": _mps(), "gpu-1": []}), [])


def test_time_slicing_without_mps_is_refused_on_a_gpu_whose_other_claims_use_mps(machine: MachineFactory) -> None:
    machine("dgx-a100", init=False)
    inv = _inventory()
    ctx = Context(DRIVER, "node", inv, "/mps")
    (mps_replica,) = plan_claim(ctx, ClaimRef("ns", "uid-0", "mps"), _claim("gpu-0-ts-0", _mps(), uid="uid-0"), [])
    other = ClaimRecord(ClaimRef("ns", "uid-0", "mps"), "PrepareCompleted", (mps_replica,))

    with pytest.raises(ClaimRejected) as refused:
        plan_claim(ctx, REF, _claim("gpu-0-ts-1"), [other])
    assert str(refused.value).startswith(
        f"GPU {inv.gpu(0).uuid}: gpu-0-ts-0 of claim ns/mps use MPS (the GPU in EXCLUSIVE_PROCESS compute mode"
    )
    assert "gpu-0-ts-1 share it without MPS" in str(refused.value)
    # the other way round, and a GPU of its own, and MPS beside MPS
    plain = ClaimRecord(
        ClaimRef("ns", "uid-0", "plain"), "PrepareCompleted", plan_claim(ctx, REF, _claim("gpu-1-ts-0"), [])
    )
    with pytest.raises(ClaimRejected, match="gpu-1-ts-0 of claim ns/plain share it without MPS"):
        plan_claim(ctx, REF, _claim("gpu-1-ts-1", _mps()), [plain])
    assert plan_claim(ctx, REF, _claim("gpu-2-ts-1"), [other, plain])
    assert plan_claim(ctx, REF, _claim("gpu-0-ts-1", _mps()), [other])
