"""The sandbox's control plane: etcd, kube-apiserver, kube-scheduler and kube-controller-manager as child
processes on 127.0.0.1.

Readiness, in start order:

* etcd — ``GET /health`` on the client URL answers ``"health":"true"``;
* kube-apiserver — ``GET /readyz`` (admin client certificate) answers ``ok``; then the served resource.k8s.io
  versions are read from discovery and v1 must be among them;
* kube-scheduler — ``GET /readyz`` on its secure port answers ``ok`` (includes its informers having synced);
* kube-controller-manager — ``GET /healthz`` on its secure port answers ``ok`` *and* the ``default``
  ServiceAccount exists in namespace ``default`` (proof that its controllers reach the API server and act).

A component that exits, or is not ready within the start-up timeout, fails the start with an error naming its log
file; whatever had started is stopped again. :meth:`ControlPlane.stop` stops the processes in reverse order.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from sandbox import featuregates, flags, health
from sandbox.binaries import Binaries, Progress
from sandbox.errors import StartupFailed
from sandbox.featuregates import FeatureGates
from sandbox.kubeconfig import write_kubeconfig
from sandbox.layout import Layout
from sandbox.pki import ADMIN, CONTROLLER_MANAGER, SCHEDULER, Pki, apiserver_serving_names, create_pki
from sandbox.processes import ChildProcess, ProcessSpec, spawn

DEFAULT_STARTUP_TIMEOUT_S = 180.0
POLL_INTERVAL_S = 0.25
Check = Callable[[], str | None]


def _quiet(_: str) -> None:
    pass


class ControlPlane:
    """Start with :meth:`start` (or ``with ControlPlane(...)``); spawn from the main thread (see processes.py)."""

    def __init__(
        self,
        workdir: Path,
        binaries: Binaries,
        *,
        requested_gates: tuple[str, ...] = featuregates.DRA_GATES,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
        progress: Progress = _quiet,
        apiserver_port: int | None = None,
    ) -> None:
        self.layout = Layout(workdir)
        self.binaries = binaries
        self._requested_gates = requested_gates
        self._timeout = startup_timeout
        self._progress = progress
        self._apiserver_port = apiserver_port
        self._children: list[ChildProcess] = []
        self._inputs: flags.Inputs | None = None
        self._served: tuple[str, ...] = ()
        self._startup_s: float | None = None

    # --- what callers read once started ---

    @property
    def feature_gates(self) -> FeatureGates:
        return self._started().gates

    @property
    def ports(self) -> flags.Ports:
        return self._started().ports

    @property
    def pki(self) -> Pki:
        return self._started().pki

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def server(self) -> str:
        return self.ports.server

    @property
    def served_resource_versions(self) -> tuple[str, ...]:
        """resource.k8s.io versions the API server serves, as discovered after start."""
        return self._served

    @property
    def startup_seconds(self) -> float:
        """Wall-clock seconds from :meth:`start` to every component ready."""
        if self._startup_s is None:
            raise RuntimeError("the control plane has not finished starting")
        return self._startup_s

    @property
    def processes(self) -> tuple[ChildProcess, ...]:
        return tuple(self._children)

    def admin_identity(self) -> health.TlsIdentity:
        pki = self.pki
        return health.TlsIdentity(pki.ca_cert, pki.client_cert(ADMIN), pki.client_key(ADMIN))

    # --- lifecycle ---

    def start(self) -> None:
        began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self._startup_s = time.monotonic() - began
        self._progress(f"control plane ready in {self._startup_s:.1f} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM each process (newest first), SIGKILL what has not exited after ``timeout`` s."""
        while self._children:
            child = self._children.pop()
            child.stop(timeout)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- internals ---

    def _started(self) -> flags.Inputs:
        if self._inputs is None:
            raise RuntimeError("the control plane is not started: call start() first")
        return self._inputs

    def _start(self) -> None:
        deadline = time.monotonic() + self._timeout
        layout = self.layout
        for stale in (layout.etcd_data, layout.pki, layout.component_kubeconfigs):
            shutil.rmtree(stale, ignore_errors=True)
        layout.logs.mkdir(parents=True, exist_ok=True)
        layout.component_kubeconfigs.mkdir(parents=True, exist_ok=True)

        gates = featuregates.resolve(self.binaries.kubernetes(), self._requested_gates)
        self._progress(
            f"feature gates set: {', '.join(gates.enabled) or 'none'}; "
            f"GA (always on): {', '.join(gates.locked_on) or 'none'}; "
            f"unavailable: {', '.join(gates.unavailable) or 'none'}"
        )
        self._check_controllers()
        pki = create_pki(layout.pki, apiserver_serving_names(flags.SERVICE_IP))
        ports = flags.Ports.pick(self._apiserver_port)
        inputs = flags.Inputs(self.binaries, layout, pki, ports, gates)
        self._inputs = inputs
        write_kubeconfig(layout.kubeconfig, ports.server, pki, ADMIN)
        for identity in (SCHEDULER, CONTROLLER_MANAGER):
            write_kubeconfig(layout.component_kubeconfig(identity.file_stem), ports.server, pki, identity)
        tls = self.admin_identity().context()

        etcd = self._spawn("etcd", flags.etcd(inputs))
        self._wait(etcd, lambda: health.check_ok(f"{ports.etcd_url}/health", expect='"health":"true"'), deadline)
        apiserver = self._spawn("kube-apiserver", flags.apiserver(inputs))
        self._wait(apiserver, lambda: health.check_ok(f"{ports.server}/readyz", tls), deadline)
        self._served = self._discover_resource_versions(tls)

        scheduler = self._spawn("kube-scheduler", flags.scheduler(inputs))
        kcm = self._spawn("kube-controller-manager", flags.controller_manager(inputs))
        self._wait(scheduler, lambda: health.check_ok(f"https://127.0.0.1:{ports.scheduler}/readyz", tls), deadline)
        kcm_healthz = f"https://127.0.0.1:{ports.controller_manager}/healthz"
        default_sa = f"{ports.server}/api/v1/namespaces/default/serviceaccounts/default"
        self._wait(kcm, lambda: health.check_ok(kcm_healthz, tls) or health.check_ok(default_sa, tls, ""), deadline)

    def _spawn(self, name: str, argv: tuple[str, ...]) -> ChildProcess:
        self._progress(f"starting {name}")
        child = spawn(ProcessSpec(name, argv, self.layout.log(name)))
        self._children.append(child)
        return child

    def _wait(self, child: ChildProcess, check: Check, deadline: float) -> None:
        """Poll ``check`` until it passes; fail if the child exits or the deadline passes."""
        began = time.monotonic()
        reason = "not checked yet"
        while True:
            if not child.alive():
                raise StartupFailed(
                    f"{child.name} exited with code {child.exit_code()} during start-up; see {child.log_file}; "
                    f"its last lines:\n{child.log_tail()}"
                )
            reason = check() or ""
            if not reason:
                self._progress(f"{child.name} ready after {time.monotonic() - began:.1f} s")
                return
            if time.monotonic() > deadline:
                raise StartupFailed(
                    f"{child.name} did not become ready within {self._timeout:.0f} s ({reason}); see "
                    f"{child.log_file}; its last lines:\n{child.log_tail()}"
                )
            time.sleep(POLL_INTERVAL_S)

    def _discover_resource_versions(self, tls: ssl.SSLContext) -> tuple[str, ...]:
        assert self._inputs is not None
        served = []
        for version in ("v1", *flags.EXTRA_RESOURCE_VERSIONS):
            url = f"{self._inputs.ports.server}/apis/{flags.RESOURCE_GROUP}/{version}"
            status, body = health.get(url, tls)
            if status == 200 and json.loads(body).get("resources"):
                served.append(version)
        if "v1" not in served:
            raise StartupFailed(
                f"kube-apiserver does not serve {flags.RESOURCE_GROUP}/v1 (serves: {served or 'nothing'}); "
                f"the binary {self.binaries.kube_apiserver} is older than 1.34: use the pinned version"
            )
        self._progress(f"{flags.RESOURCE_GROUP} versions served: {', '.join(served)}")
        return tuple(served)

    def _check_controllers(self) -> None:
        text = subprocess.run(
            [str(self.binaries.kube_controller_manager), "--help"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        ).stdout
        missing = set(flags.REQUIRED_CONTROLLERS) - flags.known_controllers(text)
        if missing:
            raise StartupFailed(
                f"{self.binaries.kube_controller_manager} has no controller(s) {', '.join(sorted(missing))}; "
                "use the pinned Kubernetes version (see sandbox/versions.py)"
            )
