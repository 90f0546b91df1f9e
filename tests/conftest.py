"""Shared fixtures: simulated GPU machines driven through the real pynvml."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pynvml
import pytest
from hypothesis import settings

from nvml_sim.control import SimulatedMachine

# Property-based tests are the same on every run (CI must not fail on a new random draw) and leave no
# example database in the tree; new draws only when a developer asks: HYPOTHESIS_PROFILE=explore.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

MachineFactory = Callable[..., SimulatedMachine]


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[MachineFactory]:
    """``machine("dgx-a100")`` creates a simulated machine, points this process's NVML at it and inits NVML.

    Every nvmlInit the test makes through the fixture is matched by nvmlShutdown afterwards.
    """
    inits = 0

    def make(profile: str, mig_enabled: bool = True, init: bool = True) -> SimulatedMachine:
        nonlocal inits
        sim = SimulatedMachine.create(tmp_path / f"{profile}-{inits}.json", profile, mig_enabled=mig_enabled)
        sim.activate()
        if init:
            pynvml.nvmlInit()
            inits += 1
        return sim

    yield make
    for _ in range(inits):
        pynvml.nvmlShutdown()
