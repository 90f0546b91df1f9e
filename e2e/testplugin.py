"""A minimal DRA kubelet plugin for protocol tests: registers, records calls, answers from a script.

It serves the real registration and DRA (v1 and v1beta1) gRPC services on unix sockets in a node's
``plugins_registry`` / ``plugins`` directories, like a real plugin. ``fail`` maps claim-name
substrings to the per-claim error to return.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from api.gen.dra.v1 import api_pb2_grpc as v1_grpc
from api.gen.dra.v1beta1 import api_pb2_grpc as v1beta1_grpc
from api.gen.pluginregistration.v1 import api_pb2 as reg_pb
from api.gen.pluginregistration.v1 import api_pb2_grpc as reg_grpc
from dra_driver.kubeletplugin import protocol as proto


@dataclass
class Calls:
    prepared: list[proto.ClaimRef] = field(default_factory=list)
    unprepared: list[proto.ClaimRef] = field(default_factory=list)
    registered: list[bool] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class TestPlugin:
    __test__ = False  # not a pytest class

    def __init__(
        self,
        driver: str,
        registry_dir: Path,
        plugins_dir: Path,
        versions: tuple[str, ...] = proto.DRA_VERSIONS,
        fail: dict[str, str] | None = None,
        refuse_get_info: int = 0,
    ) -> None:
        self.driver = driver
        self.reg_socket = registry_dir / f"{driver}-reg.sock"
        self.dra_socket = plugins_dir / driver / "dra.sock"
        self.versions = versions
        self.fail = fail or {}
        self.refuse_get_info = refuse_get_info  # the first N GetInfo calls fail (UNAVAILABLE), as a hung plugin's do
        self.get_info_calls = 0
        self.calls = Calls()
        self._servers: list[grpc.Server] = []

    def _prepare(self, version: str, request: Any) -> Any:
        results = {}
        for claim in proto.claims_from_pb(request.claims):
            with self.calls.lock:
                self.calls.prepared.append(claim)
            error = next((msg for key, msg in self.fail.items() if key in claim.name), "")
            device = proto.PreparedDevice(("gpu",), "pool", "dev-0", (f"{self.driver}/test={claim.uid}-dev-0",))
            results[claim.uid] = proto.PrepareResult((device,) if not error else (), error)
        return proto.prepare_response(version, results)

    def _unprepare(self, version: str, request: Any) -> Any:
        claims = proto.claims_from_pb(request.claims)
        with self.calls.lock:
            self.calls.unprepared.extend(claims)
        return proto.unprepare_response(version, {c.uid: "" for c in claims})

    def start(self) -> TestPlugin:
        plugin = self
        self.dra_socket.parent.mkdir(parents=True, exist_ok=True)
        self.reg_socket.parent.mkdir(parents=True, exist_ok=True)

        class V1(v1_grpc.DRAPluginServicer):  # type: ignore[misc]
            def NodePrepareResources(self, request: Any, context: Any) -> Any:
                return plugin._prepare(proto.DRA_V1, request)

            def NodeUnprepareResources(self, request: Any, context: Any) -> Any:
                return plugin._unprepare(proto.DRA_V1, request)

        class V1beta1(v1beta1_grpc.DRAPluginServicer):  # type: ignore[misc]
            def NodePrepareResources(self, request: Any, context: Any) -> Any:
                return plugin._prepare(proto.DRA_V1BETA1, request)

            def NodeUnprepareResources(self, request: Any, context: Any) -> Any:
                return plugin._unprepare(proto.DRA_V1BETA1, request)

        class Registration(reg_grpc.RegistrationServicer):  # type: ignore[misc]
            def GetInfo(self, request: Any, context: Any) -> Any:
                with plugin.calls.lock:
                    plugin.get_info_calls += 1
                    refuse = plugin.get_info_calls <= plugin.refuse_get_info
                if refuse:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "not ready")
                return reg_pb.PluginInfo(
                    type=proto.PLUGIN_TYPE,
                    name=plugin.driver,
                    endpoint=str(plugin.dra_socket),
                    supported_versions=list(plugin.versions),
                )

            def NotifyRegistrationStatus(self, request: Any, context: Any) -> Any:
                with plugin.calls.lock:
                    plugin.calls.registered.append(request.plugin_registered)
                return reg_pb.RegistrationStatusResponse()

        dra = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        if proto.DRA_V1 in self.versions:
            v1_grpc.add_DRAPluginServicer_to_server(V1(), dra)
        if proto.DRA_V1BETA1 in self.versions:
            v1beta1_grpc.add_DRAPluginServicer_to_server(V1beta1(), dra)
        dra.add_insecure_port(f"unix://{self.dra_socket}")
        dra.start()  # the DRA socket is served before the registration socket appears
        reg = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        reg_grpc.add_RegistrationServicer_to_server(Registration(), reg)
        reg.add_insecure_port(f"unix://{self.reg_socket}")
        reg.start()
        self._servers = [reg, dra]
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop(grace=None).wait()
        self.reg_socket.unlink(missing_ok=True)
        self.dra_socket.unlink(missing_ok=True)
