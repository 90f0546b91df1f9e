"""The real-node tier: one sandbox per module whose node runs the real kubelet v1.37.2 and containerd.

Marked ``realnode``; skipped (with the reason) only where the host cannot run real nodes (not Linux, not root,
no namespaces, OS packages missing: see sandbox/realnode/host.py). CI installs what it needs, so it runs there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from dra_driver.k8s import Kube
from e2e.fixtures import Sandbox, running_sandbox
from sandbox.realnode.host import why_not_real


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "e2e/realnode/" in str(item.path):
            item.add_marker(pytest.mark.realnode)
            item.add_marker(pytest.mark.sandbox)
            item.add_marker(pytest.mark.slow)


HOST_INTERFACES: list[str] = []
"""The host's network interfaces before the first real node started (none may be added)."""


@pytest.fixture(scope="module")
def real_sandbox(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The module's sandbox: ``SANDBOX = (profile, nodes, mode)`` in the test module, else dgx-a100, 1, mig."""
    reason = why_not_real()
    if reason:
        pytest.skip(reason)
    profile, nodes, mode = getattr(request.module, "SANDBOX", ("dgx-a100", 1, "mig"))
    workdir = tmp_path_factory.mktemp("realnode")
    if not HOST_INTERFACES:
        HOST_INTERFACES.extend(sorted(os.listdir("/sys/class/net")))
    with running_sandbox(workdir, profile, nodes, mode=mode, kubelet="real") as running:
        yield running


@pytest.fixture(scope="module")
def real_kube(real_sandbox: Sandbox) -> Iterator[Kube]:
    api = real_sandbox.api_client()
    yield Kube(api)
    api.close()
