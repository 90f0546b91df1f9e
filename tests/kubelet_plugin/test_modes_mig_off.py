"""A static MIG layout asked of a GPU whose MIG mode is off: NVML lists a GPU's instance profiles only while MIG is
on, so the plugin plans the layout after switching MIG on, and switches it off again where the layout does not fit
(all or nothing). Against the simulated NVML and driver root (nvidia-smi --gpu-reset), as test_modes_watch.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.gpumodes import GpuModeSpec
from api.partitioning import Mig, Whole
from dra_driver.driver_root import discover_driver_files
from dra_driver.nvml.session import Nvml
from kubelet_plugin.modes import Change, decide
from kubelet_plugin.sharing import DriverTools
from nvml_sim.build import library_path
from nvml_sim.driver_install import install
from tests.conftest import MachineFactory
from tests.kubelet_plugin.test_modes_watch import ApiStandIn, CountingHardware, Node

LAYOUT = ("3g.20gb", "2g.10gb", "1g.5gb")


@pytest.fixture
def mig_off(machine: MachineFactory, tmp_path: Path) -> Iterator[Callable[[], tuple[Node, CountingHardware]]]:
    """A single-A100 node with MIG off and a driver root whose nvidia-smi can reset the GPU."""
    sessions: list[Nvml] = []

    def make() -> tuple[Node, CountingHardware]:
        sim = machine("single-a100", mig_enabled=False, init=False)
        nvml = Nvml()
        nvml.open()
        sessions.append(nvml)
        n = Node(sim, nvml, ApiStandIn(), tmp_path)
        n.rescan()
        assert n.inv is not None and not n.gpu(0).mig_enabled and n.gpu(0).mig_profiles == ()
        root = install(tmp_path / "driver-root", n.inv.driver_version, library_path())
        watch = n.make_watch(partitionable=False, tools=DriverTools.of(discover_driver_files(root)))
        assert isinstance(watch.hardware, CountingHardware)
        return n, watch.hardware

    yield make
    for s in sessions:
        s.close()


def test_a_layout_for_a_gpu_with_mig_off_is_planned_once_mig_is_on(mig_off: Callable[[], tuple[Node, Any]]) -> None:
    n, _ = mig_off()
    gpu = n.gpu(0)
    decision = decide(gpu, GpuModeSpec(gpu.uuid, Whole()), GpuModeSpec(gpu.uuid, Mig(), LAYOUT), [], False)
    assert decision == Change(True, None, LAYOUT)


def test_mig_is_switched_on_and_the_layout_created_exactly(mig_off: Callable[[], tuple[Node, Any]]) -> None:
    n, hardware = mig_off()
    uuid = n.gpu(0).uuid
    n.desire({"uuid": uuid, "mode": "mig", "migLayout": list(LAYOUT)})
    assert n.watch is not None and n.watch.reconcile() is False
    assert n.gpu_state(uuid)[:2] == ("mig", "Applied")
    assert n.gpu(0).mig_enabled and hardware.resets == 1  # Ampere: MIG on waits for a reset
    assert sorted(d.profile for d in n.gpu(0).mig_devices) == sorted(LAYOUT)


@pytest.mark.parametrize(
    ("layout", "words"),
    [(["7g.40gb", "1g.5gb"], "compute slices"), (["1g.10gb", "9g.90gb"], "has no MIG profile 9g.90gb")],
)
def test_a_layout_that_does_not_fit_once_mig_is_on_is_refused_and_mig_switched_off_again(
    mig_off: Callable[[], tuple[Node, Any]], layout: list[str], words: str
) -> None:
    n, hardware = mig_off()
    uuid = n.gpu(0).uuid
    n.desire({"uuid": uuid, "mode": "mig", "migLayout": layout})
    assert n.watch is not None
    n.watch.reconcile()
    mode, state, reason = n.gpu_state(uuid)
    assert (mode, state) == ("whole", "Refused") and reason is not None and words in reason, reason
    assert n.sim.state()["gpus"][0]["mig"] == {"current": 0, "pending": 0}  # as it was
    assert n.sim.mig_partitions() == [] and hardware.resets == 2
