"""The kubelet's plugin watcher and DRA client, over real gRPC on unix sockets.

Like the kubelet: watch ``plugins_registry/`` for sockets, call ``GetInfo``, validate, call
``NotifyRegistrationStatus``, then talk to the DRA socket with the best version both sides support.
A plugin whose registration socket disappears, or that stops answering, becomes *unreachable*; the
caller deletes its ResourceSlices after a grace period.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from api.gen.dra.v1 import api_pb2_grpc as dra_v1_grpc
from api.gen.dra.v1beta1 import api_pb2_grpc as dra_v1beta1_grpc
from api.gen.drahealth.v1alpha1 import api_pb2 as health_pb
from api.gen.drahealth.v1alpha1 import api_pb2_grpc as health_grpc
from api.gen.pluginregistration.v1 import api_pb2 as reg_pb
from api.gen.pluginregistration.v1 import api_pb2_grpc as reg_grpc
from dra_driver.kubeletplugin import protocol as proto
from dra_driver.kubeletplugin.server import socket_answers

log = logging.getLogger(__name__)
CALL_TIMEOUT_S = 45.0  # the kubelet's timeout for NodePrepareResources / NodeUnprepareResources
RETRY_S, RETRY_MAX_S = 0.5, 122.0  # the kubelet retries a failed plugin registration with this backoff
_STUBS: dict[str, Callable[[grpc.Channel], Any]] = {
    proto.DRA_V1: dra_v1_grpc.DRAPluginStub,
    proto.DRA_V1BETA1: dra_v1beta1_grpc.DRAPluginStub,
}


class PluginCallError(Exception):
    """The plugin could not be reached or failed the whole call (not a per-claim error)."""


@dataclass
class Plugin:
    """A registered DRA plugin: its driver name, DRA endpoint and the service version in use."""

    driver: str
    endpoint: str
    version: str
    registration_socket: Path
    channel: grpc.Channel
    health: dict[tuple[str, str], str] = field(default_factory=dict)  # (pool, device) -> health
    health_supported: bool = False

    def _stub(self) -> Any:
        return _STUBS[self.version](self.channel)

    def prepare(self, claims: list[proto.ClaimRef]) -> dict[str, proto.PrepareResult]:
        try:
            response = self._stub().NodePrepareResources(
                proto.prepare_request(self.version, claims), timeout=CALL_TIMEOUT_S
            )
        except grpc.RpcError as exc:
            raise PluginCallError(f"NodePrepareResources on {self.driver}: {exc.code()}: {exc.details()}") from exc
        return proto.prepare_results_from_pb(response)

    def unprepare(self, claims: list[proto.ClaimRef]) -> dict[str, str]:
        try:
            response = self._stub().NodeUnprepareResources(
                proto.unprepare_request(self.version, claims), timeout=CALL_TIMEOUT_S
            )
        except grpc.RpcError as exc:
            raise PluginCallError(f"NodeUnprepareResources on {self.driver}: {exc.code()}: {exc.details()}") from exc
        return proto.unprepare_errors_from_pb(response)


def _unix(path: str | Path) -> str:
    return f"unix://{path}"


class PluginWatcher:
    """Polls a ``plugins_registry`` directory and keeps the set of registered DRA plugins."""

    def __init__(self, registry_dir: Path, on_change: Callable[[], None] | None = None, poll_s: float = 0.2) -> None:
        self.registry_dir = registry_dir
        self.poll_s = poll_s
        self.on_change = on_change
        self._plugins: dict[str, Plugin] = {}  # driver -> the plugin in use (the newest registration)
        self._registered: dict[Path, Plugin] = {}  # registration socket -> plugin
        # socket -> (its mtime, next try, backoff) after a failed registration: retried with exponential backoff,
        # as the kubelet's plugin manager retries (0.5 s doubling to 2 min 2 s), at once when the socket is remade
        self._failed: dict[Path, tuple[float, float, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"plugin-watcher:{registry_dir}", daemon=True)
        self.unreachable_since: dict[str, float] = {}  # driver -> monotonic time it went away

    def start(self) -> None:
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            for plugin in self._registered.values():
                plugin.channel.close()
            self._plugins.clear()
            self._registered.clear()

    def plugin(self, driver: str) -> Plugin | None:
        with self._lock:
            return self._plugins.get(driver)

    def drivers(self) -> list[str]:
        with self._lock:
            return sorted(self._plugins)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.scan()
            except Exception:  # keep watching whatever one plugin does
                log.exception("plugin watcher scan failed")

    def scan(self) -> None:
        """Register sockets once each; a driver's newest registration wins; a removed socket deregisters."""
        sockets = {p for p in self.registry_dir.glob("*.sock") if p.is_socket()}
        changed = False
        with self._lock:
            for sock in list(self._registered):
                if sock not in sockets:
                    gone = self._registered.pop(sock)
                    gone.channel.close()
                    log.info("plugin %s deregistered (socket %s removed)", gone.driver, sock)
                    changed = True
                    if self._plugins.get(gone.driver) is gone:
                        del self._plugins[gone.driver]
                        successors = [p for p in self._registered.values() if p.driver == gone.driver]
                        if successors:
                            self._plugins[gone.driver] = successors[-1]
                        else:
                            self.unreachable_since.setdefault(gone.driver, time.monotonic())
            known = set(self._registered)
        for sock in sorted(sockets - known, key=lambda p: p.stat().st_mtime):
            mtime, now = sock.stat().st_mtime, time.monotonic()
            failed = self._failed.get(sock)
            if failed is not None and failed[0] == mtime and now < failed[1]:
                continue
            registered = self._register(sock)
            if registered is None:
                backoff = min(2 * failed[2], RETRY_MAX_S) if failed is not None and failed[0] == mtime else RETRY_S
                self._failed[sock] = (mtime, now + backoff, backoff)
                continue
            self._failed.pop(sock, None)
            plugin = registered
            with self._lock:
                self._registered[sock] = plugin
                self._plugins[plugin.driver] = plugin
                self.unreachable_since.pop(plugin.driver, None)
            if plugin.health_supported:
                threading.Thread(target=self._watch_health, args=(plugin,), daemon=True).start()
            changed = True
        self._probe()
        if changed and self.on_change:
            self.on_change()

    def _probe(self) -> None:
        """A plugin whose DRA socket stops answering (killed: its socket files stay) is unreachable."""
        with self._lock:
            plugins = list(self._plugins.values())
        for plugin in plugins:
            if socket_answers(plugin.endpoint.removeprefix("unix://"), timeout=0.5):
                self.unreachable_since.pop(plugin.driver, None)
            else:
                self.unreachable_since.setdefault(plugin.driver, time.monotonic())

    def _register(self, sock: Path) -> Plugin | None:
        with grpc.insecure_channel(_unix(sock)) as channel:
            stub = reg_grpc.RegistrationStub(channel)
            try:
                info = stub.GetInfo(reg_pb.InfoRequest(), timeout=5)
            except grpc.RpcError as exc:
                log.warning("GetInfo on %s failed: %s", sock, exc.code())
                return None
            error = self._validate(info)
            try:
                stub.NotifyRegistrationStatus(
                    reg_pb.RegistrationStatus(plugin_registered=not error, error=error), timeout=5
                )
            except grpc.RpcError as exc:
                log.warning("NotifyRegistrationStatus on %s failed: %s", sock, exc.code())
                return None
        if error:
            log.warning("plugin at %s rejected: %s", sock, error)
            return None
        version = proto.best_version(list(info.supported_versions))
        assert version is not None
        log.info("registered DRA plugin %s at %s using %s", info.name, info.endpoint, version)
        return Plugin(
            driver=info.name,
            endpoint=info.endpoint,
            version=version,
            registration_socket=sock,
            channel=grpc.insecure_channel(_unix(info.endpoint)),
            health_supported=proto.HEALTH_V1ALPHA1 in info.supported_versions,
        )

    @staticmethod
    def _validate(info: Any) -> str:
        if info.type != proto.PLUGIN_TYPE:
            return f"plugin type {info.type!r} is not {proto.PLUGIN_TYPE!r}"
        if not info.name:
            return "plugin name (the driver name) is empty"
        if not info.endpoint.startswith("/"):
            return f"endpoint {info.endpoint!r} is not an absolute socket path"
        if proto.best_version(list(info.supported_versions)) is None:
            return f"none of the supported versions {list(info.supported_versions)} is one of {proto.DRA_VERSIONS}"
        return ""

    def _watch_health(self, plugin: Plugin) -> None:
        """Consume the health stream, reconnecting every 5 s like the kubelet, while registered."""
        while not self._stop.is_set() and self.plugin(plugin.driver) is plugin:
            try:
                stub = health_grpc.DRAResourceHealthStub(plugin.channel)
                for msg in stub.NodeWatchResources(health_pb.NodeWatchResourcesRequest()):
                    plugin.health = {
                        (d.device.pool_name, d.device.device_name): health_pb.HealthStatus.Name(d.health)
                        for d in msg.devices
                    }
            except grpc.RpcError:
                pass
            self._stop.wait(5)
