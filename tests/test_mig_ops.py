"""Creating and destroying MIG partitions through the driver's NVML module, with rollback."""

from __future__ import annotations

import pytest

from dra_driver import errors
from dra_driver.nvml import mig
from dra_driver.nvml.session import Nvml
from tests.conftest import MachineFactory


def test_partition_is_created_at_the_placement_and_destroyed_idempotently(machine: MachineFactory) -> None:
    sim = machine("dgx-h100", init=False)
    with Nvml() as nvml:
        p = mig.create_partition(nvml, 5, "3g.40gb", 4)
        assert (p.gpu_index, p.gpu_instance_id, p.compute_instance_id, p.start, p.size) == (5, 1, 0, 4, 4)
        assert p.uuid.startswith("MIG-")
        assert mig.gpu_instances(nvml, 5) == [(1, "3g.40gb", 4)]
        assert sim.mig_partitions() == [(5, 1, 0)]
        assert mig.destroy_partition(nvml, 5, p.gpu_instance_id) is True
        assert mig.destroy_partition(nvml, 5, p.gpu_instance_id) is False
    assert sim.mig_partitions() == []


def test_busy_placement_is_reported_and_changes_nothing(machine: MachineFactory) -> None:
    sim = machine("single-a100", init=False)
    with Nvml() as nvml:
        mig.create_partition(nvml, 0, "4g.20gb", 0)
        with pytest.raises(errors.InsufficientResources):
            mig.create_partition(nvml, 0, "1g.5gb", 2)
    assert sim.mig_partitions() == [(0, 1, 0)]


def test_failed_compute_instance_rolls_back_the_gpu_instance(machine: MachineFactory) -> None:
    sim = machine("single-a100", init=False)
    sim.set_fault(0, "ci-failing")
    with Nvml() as nvml, pytest.raises(errors.NvmlError, match="nvmlGpuInstanceCreateComputeInstance"):
        mig.create_partition(nvml, 0, "2g.10gb", 2)
    assert sim.mig_partitions() == []  # no half-made partition left


def test_unknown_profile_names_the_valid_ones(machine: MachineFactory) -> None:
    machine("single-a100", init=False)
    with Nvml() as nvml, pytest.raises(errors.ConfigError, match=r"no MIG profile '9g\.99gb'.*1g\.5gb"):
        mig.create_partition(nvml, 0, "9g.99gb", 0)


def test_destroy_removes_every_compute_instance_first(machine: MachineFactory) -> None:
    import pynvml

    from tests.nvml_sim.helpers import create_gi

    sim = machine("single-a100")
    gi = create_gi(pynvml.nvmlDeviceGetHandleByIndex(0), 0, 0, 8)
    for _ in range(3):
        pynvml.nvmlGpuInstanceCreateComputeInstance(gi, 0)  # three 1c.7g.40gb compute instances
    with Nvml() as nvml:
        assert mig.destroy_partition(nvml, 0, 0)
    assert sim.mig_partitions() == []
