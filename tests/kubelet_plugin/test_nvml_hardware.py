"""HardwareOps, the NVML implementation of GpuHardware, on the simulated NVML: what repair and undo rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from dra_driver import errors
from dra_driver.driver_root import discover_driver_files
from dra_driver.nvml.session import Nvml
from kubelet_plugin.hardware import GpuInstance, HardwareOps
from kubelet_plugin.records import DeviceRecord, MigPartition, MpsSettings
from kubelet_plugin.sharing import DriverTools, ToolMissing
from nvml_sim.build import library_path
from nvml_sim.driver_install import install
from tests.conftest import MachineFactory


def _ops(nvml: Nvml, tmp_path: Path) -> HardwareOps:
    """HardwareOps with no driver tools (none of these tests needs one)."""
    return HardwareOps(nvml, DriverTools(tmp_path / "driver-root", {}), tmp_path / "mps")


def _mig(gpu_uuid: str, mps: MpsSettings | None = None) -> DeviceRecord:
    return DeviceRecord(("gpu",), "node", "gpu-0-mig-1g-5gb-3", MigPartition(gpu_uuid, 0, "1g.5gb", 3, 1), mps=mps)


def test_partitions_are_listed_and_destroyed_once(machine: MachineFactory, tmp_path: Path) -> None:
    sim = machine("single-a100", init=False)
    with Nvml() as nvml:
        ops = _ops(nvml, tmp_path)
        done = ops.apply(_mig(sim.state()["gpus"][0]["uuid"]))
        assert isinstance(done.hardware, MigPartition) and done.hardware.gpu_instance_id is not None
        gi = done.hardware.gpu_instance_id
        assert ops.gpu_instances(0) == [GpuInstance(gi, "1g.5gb", 3)]
        assert ops.destroy_gpu_instance(0, gi) is True
        assert ops.destroy_gpu_instance(0, gi) is False
    assert sim.mig_partitions() == []


def test_undo_on_a_lost_gpu_raises_gpu_lost_and_succeeds_once_it_returns(
    machine: MachineFactory, tmp_path: Path
) -> None:
    sim = machine("single-a100", init=False)
    with Nvml() as nvml:
        ops = _ops(nvml, tmp_path)
        done = ops.apply(_mig(sim.state()["gpus"][0]["uuid"]))
        sim.set_fault(0, "lost")
        with pytest.raises(errors.GpuLost):
            ops.undo(done, [])
        assert len(sim.mig_partitions()) == 1
        sim.set_fault(0, None)
        ops.undo(done, [])
    assert sim.mig_partitions() == []


def test_a_partition_whose_mps_setup_fails_is_destroyed_again(machine: MachineFactory, tmp_path: Path) -> None:
    sim = machine("single-a100", init=False)
    blocked = tmp_path / "file"
    blocked.write_text("")  # the pipe directory cannot be made below a file
    mps = MpsSettings("gpu-0-mig-1g-5gb-3", str(blocked / "u1"))
    root = install(tmp_path / "driver-root", sim.state()["driverVersion"], library_path())
    with Nvml() as nvml:
        ops = HardwareOps.for_driver(nvml, discover_driver_files(root), tmp_path / "mps")
        with pytest.raises(NotADirectoryError):
            ops.apply(_mig(sim.state()["gpus"][0]["uuid"], mps))
    assert sim.mig_partitions() == []


def test_without_the_mps_tool_a_partition_with_mps_is_never_created(machine: MachineFactory, tmp_path: Path) -> None:
    sim = machine("single-a100", init=False)
    mps = MpsSettings("gpu-0-mig-1g-5gb-3", str(tmp_path / "mps" / "gpu-0-mig-1g-5gb-3"))
    with Nvml() as nvml:
        ops = _ops(nvml, tmp_path)
        assert "MPS sharing needs nvidia-cuda-mps-control" in (ops.unavailable(_mig("GPU-x", mps)) or "")
        with pytest.raises(ToolMissing, match="nvidia-cuda-mps-control"):
            ops.apply(_mig(sim.state()["gpus"][0]["uuid"], mps))
    assert sim.mig_partitions() == []
