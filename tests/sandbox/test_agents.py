"""A sandbox node's plugin sees its simulated machine: NVML through the state file, placement through its sysfs."""

from __future__ import annotations

from pathlib import Path

from nvml_sim.control import SimulatedMachine
from sandbox.agents import plugin_command
from sandbox.layout import Layout


def test_the_plugin_reads_numa_nodes_and_pcie_roots_from_its_machines_sysfs(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    argv, _ = plugin_command(layout, "sim-node-0", "dgx-a100", tmp_path / "kubeconfig")
    sysfs = Path(argv[argv.index("--sysfs-root") + 1])
    assert sysfs == SimulatedMachine(layout.machine_file("sim-node-0")).sysfs_root()
    assert (sysfs / "bus" / "pci" / "devices" / "0000:07:00.0" / "numa_node").read_text() == "0\n"
