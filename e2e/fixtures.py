"""Pytest fixtures for tests that need a real control plane. Use from a conftest.py::

    from e2e.fixtures import sandbox, sandbox_nodes, sandbox_profile  # noqa: F401

``sandbox`` (session scope) starts one sandbox through the same path as ``dra-gpu sandbox up`` in a temporary
work directory and stops it at the end of the session. Override ``sandbox_profile`` / ``sandbox_nodes`` (session
fixtures) in a conftest.py to change what it starts. :func:`running_sandbox` starts a private one for tests that
must stop or break it, or that need one with some feature gates off (``gates_off``).

The binaries come from :func:`sandbox.binaries.find_or_build`: set ``DRA_SANDBOX_BIN_DIR`` to skip a
build, else the first run builds them into the cache (minutes).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import config as kube_config
from kubernetes.client import ApiClient

from sandbox.commands import sandbox_down, sandbox_up
from sandbox.featuregates import OFF_ENV, FeatureGates
from sandbox.layout import Layout
from sandbox.status import State, Status, read_status

DEFAULT_TEST_NODES = 2


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox as tests see it."""

    workdir: Path
    status: Status

    @property
    def kubeconfig(self) -> Path:
        return Path(self.status.kubeconfig)

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.status.nodes

    @property
    def feature_gates(self) -> FeatureGates:
        assert self.status.feature_gates is not None
        return self.status.feature_gates

    @property
    def layout(self) -> Layout:
        return Layout(self.workdir)

    def api_client(self) -> ApiClient:
        """A new Kubernetes client authenticated as the sandbox admin (close it when done)."""
        api: ApiClient = kube_config.new_client_from_config(config_file=str(self.kubeconfig))
        return api


class SandboxStartFailed(Exception):
    pass


@contextlib.contextmanager
def running_sandbox(
    workdir: Path,
    profile: str = "",
    nodes: int = DEFAULT_TEST_NODES,
    *,
    mode: str | None = None,
    kubelet: str = "simulated",
    gates_off: Sequence[str] = (),
) -> Iterator[Sandbox]:
    """Start a sandbox in ``workdir`` and stop it on exit; ``up``'s output goes into the error if it fails.
    ``gates_off``: feature gates set false on its control plane (``$DRA_SANDBOX_GATES_OFF``, see
    sandbox/featuregates.py), e.g. ``("DRAPartitionableDevices",)`` for a cluster without partitionable devices.

    The sandbox also stops by itself within a second or two if this process dies (``owner_pid``), so an
    interrupted or killed test run leaves no control plane behind.
    """
    out = io.StringIO()
    with contextlib.redirect_stdout(out), _env(OFF_ENV, ",".join(gates_off)):  # the supervisor inherits it
        code = sandbox_up(profile, nodes, workdir, owner_pid=os.getpid(), mode=mode, kubelet=kubelet)
    status = read_status(Layout(workdir))
    if code != 0 or status is None or status.state is not State.READY:
        with contextlib.redirect_stdout(io.StringIO()):
            sandbox_down(workdir)
        raise SandboxStartFailed(f"sandbox did not start (exit {code}); logs in {workdir / 'logs'}:\n{out.getvalue()}")
    try:
        yield Sandbox(workdir, status)
    finally:
        with contextlib.redirect_stdout(io.StringIO()):
            sandbox_down(workdir)


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """``$name`` set to ``value`` (unset when empty) inside, as it was outside."""
    before = os.environ.pop(name, None)
    if value:
        os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)
        if before is not None:
            os.environ[name] = before


@pytest.fixture(scope="session")
def sandbox_profile() -> str:
    return ""


@pytest.fixture(scope="session")
def sandbox_nodes() -> int:
    return DEFAULT_TEST_NODES


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory, sandbox_profile: str, sandbox_nodes: int) -> Iterator[Sandbox]:
    workdir = tmp_path_factory.mktemp("sandbox")
    with running_sandbox(workdir, sandbox_profile, sandbox_nodes) as running:
        yield running
