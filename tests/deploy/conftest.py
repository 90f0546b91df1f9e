"""``helm``: the helm CLI at the pinned version (sandbox/versions.py), built into the cache on first use."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.binaries import find_or_build_helm
from tests.deploy.chart import progress


@pytest.fixture(scope="session")
def helm() -> Path:
    return find_or_build_helm(progress)
