"""Inventories of simulated machines, discovered through the real NVML code path (and the machines' sysfs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dra_driver.inventory import Inventory
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from tests.conftest import MachineFactory


@pytest.fixture
def inventory(machine: MachineFactory) -> Callable[..., Inventory]:
    def make(profile: str, **kwargs: object) -> Inventory:
        sim = machine(profile, init=False, **kwargs)
        with Nvml() as nvml:
            return discover(nvml, sim.sysfs_root())

    return make
