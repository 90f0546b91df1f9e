"""Discovery turns NVML's answers into the typed inventory; errors become actionable ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pynvml
import pytest

from dra_driver import errors
from dra_driver.inventory import Placement, inventory_json
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from nvml_sim.control import SimulatedMachine
from nvml_sim.hardware import MACHINE_PROFILES
from nvml_sim.topology import bus_id
from tests.conftest import MachineFactory
from tests.nvml_sim.helpers import create_full_ci, create_gi, placement


@pytest.mark.parametrize("profile", sorted(MACHINE_PROFILES))
def test_inventory_lists_every_gpu_of_the_profile(machine: MachineFactory, profile: str) -> None:
    machine(profile, init=False)
    with Nvml() as nvml:
        inv = discover(nvml)
    assert len(inv.gpus) == len(MACHINE_PROFILES[profile].gpus)
    assert inv.driver_version == "580.95.05"
    assert inv.cuda_driver_version == "13.0"
    for gpu in inv.gpus:
        assert gpu.mig_capable == (profile != "l4")
        assert gpu.mig_enabled == gpu.mig_capable
        assert bool(gpu.mig_profiles) == gpu.mig_capable
        assert gpu.multiprocessors in (108, 132, 56, 58)


def test_a100_inventory_has_the_mig_placement_table(machine: MachineFactory) -> None:
    machine("dgx-a100", init=False)
    with Nvml() as nvml:
        gpu = discover(nvml).gpu(5)
    one = gpu.mig_profile("1g.5gb")
    three = gpu.mig_profile("3g.20gb")
    seven = gpu.mig_profile("7g.40gb")
    assert one is not None and three is not None and seven is not None
    assert [p.start for p in one.placements] == list(range(7))
    assert three.placements == (Placement(0, 4), Placement(4, 4))
    assert (seven.placements, seven.memory_bytes, seven.multiprocessors) == ((Placement(0, 8),), 40192 << 20, 98)
    assert gpu.memory_slices == 8
    assert gpu.pci_bus_id == "0000:90:00.0"


def test_existing_mig_devices_are_discovered(machine: MachineFactory) -> None:
    machine("single-a100")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    create_full_ci(create_gi(h, 9, 4, 4))
    create_gi(h, 19, 0, 1)  # a GPU instance without a compute instance is no MIG device
    with Nvml() as nvml:
        gpu = discover(nvml).gpu(0)
    assert [(gi.id, gi.profile_id) for gi in gpu.gpu_instances] == [(1, 9), (7, 19)]
    (dev,) = gpu.mig_devices
    assert (dev.profile, dev.placement, dev.gpu_instance_id, dev.compute_instance_id) == (
        "3g.20gb",
        Placement(4, 4),
        1,
        0,
    )
    assert dev.uuid.startswith("MIG-") and dev.parent_uuid == gpu.uuid
    assert (dev.memory_bytes, dev.multiprocessors, dev.compute_slices) == (19968 << 20, 42, 3)


def test_lost_gpu_is_reported_unhealthy_not_fatal(machine: MachineFactory) -> None:
    sim = machine("dgx-h100", init=False)
    sim.set_fault(4, "lost")
    with Nvml() as nvml:
        inv = discover(nvml)
    assert [g.index for g in inv.gpus] == [0, 1, 2, 3, 5, 6, 7]
    assert inv.unhealthy[0].index == 4
    assert "GPU is lost" in inv.unhealthy[0].reason and "Xid 79" in inv.unhealthy[0].reason


@pytest.mark.parametrize("profile", ["dgx-a100", "dgx-h100", "l4"])
def test_numa_node_and_pcie_root_come_from_the_machines_sysfs(machine: MachineFactory, profile: str) -> None:
    root = machine(profile, init=False).sysfs_root()
    with Nvml() as nvml:
        inv = discover(nvml, root)
    for gpu, slot in zip(inv.gpus, MACHINE_PROFILES[profile].gpus, strict=True):
        device = root / "bus" / "pci" / "devices" / gpu.pci_bus_id
        assert gpu.pci_bus_id == bus_id(slot.pci_bus)  # NVML's 00000000:4E:00.0 is sysfs' 0000:4e:00.0
        assert gpu.numa_node == slot.numa_node == int((device / "numa_node").read_text())
        assert gpu.pcie_root == f"pci0000:{slot.pcie_root:02x}"
        assert gpu.pcie_root == Path(os.path.realpath(device)).relative_to(root / "devices").parts[0]
    assert {g.numa_node for g in inv.gpus} == {0, 1}
    assert len({g.pcie_root for g in inv.gpus}) > 1


def test_a_numa_node_of_minus_one_or_none_at_all_means_no_numa_node(machine: MachineFactory) -> None:
    root = machine("dgx-a100", init=False).sysfs_root()
    with Nvml() as nvml:
        before = discover(nvml, root)
        devices = root / "bus" / "pci" / "devices"
        (devices / before.gpu(0).pci_bus_id / "numa_node").write_text("-1\n")  # a machine without NUMA
        (devices / before.gpu(1).pci_bus_id / "numa_node").unlink()
        after = discover(nvml, root)
    assert (after.gpu(0).numa_node, after.gpu(1).numa_node, after.gpu(2).numa_node) == (None, None, 0)
    assert [g.pcie_root for g in after.gpus] == [g.pcie_root for g in before.gpus]  # the PCIe path is still there


def test_nvmls_numa_node_is_used_where_sysfs_has_none(machine: MachineFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """On hosts where NVML answers (not x86), its answer stands in for a missing or -1 numa_node."""
    root = machine("single-a100", init=False).sysfs_root()
    monkeypatch.setattr(pynvml, "nvmlDeviceGetNumaNodeId", lambda handle: 3)
    with Nvml() as nvml:
        assert discover(nvml, root).gpu(0).numa_node == 0  # sysfs first
        (root / "bus" / "pci" / "devices" / "0000:07:00.0" / "numa_node").write_text("-1\n")
        assert discover(nvml, root).gpu(0).numa_node == 3


def test_a_gpu_missing_from_sysfs_has_no_numa_node_or_pcie_root(machine: MachineFactory, tmp_path: Path) -> None:
    root = machine("single-a100", init=False).sysfs_root()
    devices = root / "bus" / "pci" / "devices"
    with Nvml() as nvml:
        assert discover(nvml, tmp_path / "no-sysfs").gpu(0).pcie_root is None
        (devices / "0000:07:00.0").unlink()
        (devices / "0000:07:00.0").symlink_to("../../../devices/pci0000:00/gone")  # a dangling link
        gpu = discover(nvml, root).gpu(0)
        assert (gpu.numa_node, gpu.pcie_root) == (None, None)
        (devices / "0000:07:00.0").unlink()
        (devices / "0000:07:00.0").symlink_to(tmp_path)  # a path outside <sysfs>/devices names no root complex
        assert discover(nvml, root).gpu(0).pcie_root is None


def test_nvml_errors_become_our_errors_with_a_hint(machine: MachineFactory) -> None:
    machine("single-a100", init=False)
    with Nvml() as nvml:
        h = nvml.device(0)
        nvml.call("nvmlDeviceCreateGpuInstanceWithPlacement", h, 9, placement(0, 4))
        with pytest.raises(errors.InsufficientResources, match="placement is busy"):
            nvml.call("nvmlDeviceCreateGpuInstanceWithPlacement", h, 9, placement(0, 4))


def test_no_machine_means_driver_not_loaded(machine: MachineFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    machine("single-a100", init=False)
    monkeypatch.setenv("DRA_SIM_NVML_STATE", "/nonexistent")
    with pytest.raises(errors.NvmlUnavailable, match="kernel driver is not loaded"):
        Nvml().open()


def test_missing_library_path_is_reported() -> None:
    with pytest.raises(errors.NvmlUnavailable, match="cannot load NVML library /nonexistent"):
        Nvml(Path("/nonexistent/libnvidia-ml.so.1")).open()


def test_inventory_json_has_the_documented_fields(machine: MachineFactory) -> None:
    machine("l4", init=False)
    with Nvml() as nvml:
        data = inventory_json(discover(nvml))
    gpu = data["gpus"][0]
    for key in ("index", "minor", "uuid", "productName", "memoryBytes", "migCapable", "migEnabled", "migProfiles"):
        assert key in gpu
    assert "numaNode" in gpu and "pcieRoot" in gpu
    assert gpu["productName"] == "NVIDIA L4" and gpu["migProfiles"] == []


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=120,
    )


def test_cli_inventory_json_for_dgx_a100() -> None:
    out = _cli("inventory", "--simulate", "dgx-a100", "-o", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data["gpus"]) == 8
    profiles = {p["name"]: p for p in data["gpus"][0]["migProfiles"]}
    assert [p["start"] for p in profiles["1g.5gb"]["placements"]] == [0, 1, 2, 3, 4, 5, 6]
    assert [p["start"] for p in profiles["3g.20gb"]["placements"]] == [0, 4]
    assert profiles["7g.40gb"]["placements"] == [{"start": 0, "size": 8}]
    assert profiles["1g.5gb"]["profileId"] == 19


def test_cli_table_and_yaml_outputs(tmp_path: Path) -> None:
    table = _cli("inventory", "--simulate", "a100-80gb-a30")
    assert table.returncode == 0
    assert "NVIDIA A30" in table.stdout and "1g.6gb@0,1,2,3" in table.stdout
    sim = SimulatedMachine.create(tmp_path / "m.json", "l4")
    yaml_out = _cli("inventory", "--sim-state", str(sim.state_path), "-o", "yaml")
    assert yaml_out.returncode == 0 and "productName: NVIDIA L4" in yaml_out.stdout


def test_cli_without_nvml_exits_with_an_actionable_message() -> None:
    out = _cli("inventory", env={"PATH": os.environ["PATH"]})
    assert out.returncode == 2  # the environment is wrong, as with every user mistake
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "libnvidia-ml.so.1 not found" in out.stderr and "--simulate" in out.stderr
