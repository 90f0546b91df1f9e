"""The plugin's gRPC services on unix sockets: DRA (v1, v1beta1), health (v1alpha1, v1), registration.

Start order: remove stale sockets, serve the DRA socket, then the registration socket (the kubelet
connects to the DRA socket as soon as it sees the registration socket). Stop order is the reverse.
Socket names carry the plugin pod's UID, so two plugin pods of a rolling update never clash.

Input hygiene (validation.py): a DRA request with too many claims is refused (INVALID_ARGUMENT), messages
over ``MAX_MESSAGE_BYTES`` are refused by gRPC, and an invalid claim reference gets a per-claim error
without reaching the handler.

Health (v1alpha1 and v1, health.py): each NodeWatchResources stream carries the full snapshot of every
device's health at once on connect, on every change, and again every 15 s (``HEALTH_RESEND_S``, the
``health_resend_s`` argument) without a change: the kubelet shows a device as ``Unknown`` in the pod's
``allocatedResourcesStatus`` once its last report is older than the 30 s sent as
``health_check_timeout_seconds``. A stream ends as soon as its client goes away or the server stops.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, Protocol

import grpc

from api.gen.dra.v1 import api_pb2_grpc as dra_v1
from api.gen.dra.v1beta1 import api_pb2_grpc as dra_v1beta1
from api.gen.drahealth.v1 import api_pb2 as health_v1_pb
from api.gen.drahealth.v1 import api_pb2_grpc as health_v1
from api.gen.drahealth.v1alpha1 import api_pb2 as health_v1alpha1_pb
from api.gen.drahealth.v1alpha1 import api_pb2_grpc as health_v1alpha1
from api.gen.pluginregistration.v1 import api_pb2 as reg_pb
from api.gen.pluginregistration.v1 import api_pb2_grpc as reg_grpc
from dra_driver.k8s import shorten
from dra_driver.kubeletplugin import protocol as proto
from dra_driver.kubeletplugin import validation
from dra_driver.kubeletplugin.health import HEALTH_CHECK_TIMEOUT_S, HEALTH_RESEND_S, HealthFeed

log = logging.getLogger(__name__)
REGISTRATION_MAX_MESSAGE_BYTES = 64 * 1024  # the kubelet sends a bool and an error string


class DraHandler(Protocol):
    def prepare(
        self, claims: list[proto.ClaimRef], answered: threading.Event | None = None
    ) -> dict[str, proto.PrepareResult]:
        """``answered`` is set once the answer has gone out (the RPC ended): work a handler leaves for after the
        answer (a status write) can wait for it, so that it does not compete with the answer."""
        ...

    def unprepare(self, claims: list[proto.ClaimRef]) -> dict[str, str]: ...
    def health(self, timeout: float) -> list[tuple[str, str, int, str]]:
        """(pool, device, HealthStatus value, message) of every device; blocks up to ``timeout`` for a change."""
        ...


def socket_answers(path: Path | str, timeout: float = 0.3) -> bool:
    """Does a process listen on the unix socket ``path``? (A plain connect: no gRPC channel, whose readiness
    poller outlives a timed-out wait and fails once the channel is closed.)"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def remove_stale_sockets(directory: Path, pattern: str, keep: Path | None = None) -> list[Path]:
    """Remove sockets matching ``pattern`` that nobody serves (left by a killed plugin)."""
    removed = []
    for sock in directory.glob(pattern):
        if sock == keep or (not sock.is_socket() and sock.exists()):
            continue
        if socket_answers(sock):
            continue  # someone answers: another plugin pod's socket
        sock.unlink(missing_ok=True)
        removed.append(sock)
    return removed


def _admitted(request: Any, context: Any, call: str) -> tuple[list[proto.ClaimRef], dict[str, str]]:
    """The request's valid claims and the errors of its invalid ones; too many claims abort the call."""
    problem = validation.too_many_claims(len(request.claims))
    if problem is not None:
        log.warning("%s refused: %s", call, problem)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
    valid, refused = validation.split_claims(proto.claims_from_pb(request.claims))
    for uid, error in refused.items():
        log.warning("%s: claim %s refused: %s", call, shorten(uid), error)
    return valid, refused


def _dra_servicer(base: type, version: str, handler: DraHandler) -> Any:
    class Servicer(base):  # type: ignore[misc]
        def NodePrepareResources(self, request: Any, context: Any) -> Any:
            valid, refused = _admitted(request, context, "NodePrepareResources")
            answered = threading.Event()
            context.add_callback(answered.set)  # the RPC ended: its answer went out (or its client went away)
            results = handler.prepare(valid, answered) if valid else {}
            results |= {uid: proto.PrepareResult(error=error) for uid, error in refused.items()}
            return proto.prepare_response(version, results)

        def NodeUnprepareResources(self, request: Any, context: Any) -> Any:
            valid, refused = _admitted(request, context, "NodeUnprepareResources")
            errors = handler.unprepare(valid) if valid else {}
            return proto.unprepare_response(version, errors | refused)

    return Servicer()


def _health_servicer(base: type, pb: Any, feed: HealthFeed) -> Any:
    class Servicer(base):  # type: ignore[misc]
        def NodeWatchResources(self, request: Any, context: Any) -> Iterator[Any]:
            context.add_callback(feed.wake)  # the client went away: the stream stops waiting at once
            for snapshot in feed.stream(context.is_active):
                now = int(time.time())
                yield pb.NodeWatchResourcesResponse(
                    devices=[
                        pb.DeviceHealth(
                            device=pb.DeviceIdentifier(pool_name=pool, device_name=name),
                            health=status,
                            message=message,
                            last_updated_time=now,
                            health_check_timeout_seconds=HEALTH_CHECK_TIMEOUT_S,
                        )
                        for pool, name, status, message in snapshot
                    ]
                )

    return Servicer()


class PluginServer:
    def __init__(
        self,
        driver_name: str,
        dra_socket: Path,
        registration_socket: Path,
        handler: DraHandler,
        health_resend_s: float = HEALTH_RESEND_S,
    ) -> None:
        self.driver_name = driver_name
        self.dra_socket = dra_socket
        self.registration_socket = registration_socket
        self.handler = handler
        self.registered = threading.Event()
        self.registration_error = ""
        self.health_resend_s = health_resend_s
        self._health: HealthFeed | None = None
        self._dra: grpc.Server | None = None
        self._reg: grpc.Server | None = None

    def start(self) -> None:
        self.dra_socket.parent.mkdir(parents=True, exist_ok=True)
        self.registration_socket.parent.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale_sockets(self.dra_socket.parent, "*.sock") + remove_stale_sockets(
            self.registration_socket.parent, f"{self.driver_name}-*reg.sock"
        ):
            log.info("removed stale socket %s", stale)
        self.dra_socket.unlink(missing_ok=True)
        self.registration_socket.unlink(missing_ok=True)
        dra = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="dra"),
            options=[("grpc.max_receive_message_length", validation.MAX_MESSAGE_BYTES)],
        )
        dra_v1.add_DRAPluginServicer_to_server(_dra_servicer(dra_v1.DRAPluginServicer, proto.DRA_V1, self.handler), dra)
        dra_v1beta1.add_DRAPluginServicer_to_server(
            _dra_servicer(dra_v1beta1.DRAPluginServicer, proto.DRA_V1BETA1, self.handler), dra
        )
        feed = self._health = HealthFeed(self.handler.health, self.health_resend_s)
        health_v1alpha1.add_DRAResourceHealthServicer_to_server(
            _health_servicer(health_v1alpha1.DRAResourceHealthServicer, health_v1alpha1_pb, feed), dra
        )
        health_v1.add_DRAResourceHealthServicer_to_server(
            _health_servicer(health_v1.DRAResourceHealthServicer, health_v1_pb, feed), dra
        )
        dra.add_insecure_port(f"unix://{self.dra_socket}")
        dra.start()
        self._dra = dra
        reg = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="registration"),
            options=[("grpc.max_receive_message_length", REGISTRATION_MAX_MESSAGE_BYTES)],
        )
        reg_grpc.add_RegistrationServicer_to_server(self._registration(), reg)
        reg.add_insecure_port(f"unix://{self.registration_socket}")
        reg.start()
        self._reg = reg
        log.info("serving DRA on %s, registration on %s", self.dra_socket, self.registration_socket)

    def _registration(self) -> Any:
        server = self

        class Registration(reg_grpc.RegistrationServicer):
            def GetInfo(self, request: Any, context: Any) -> Any:
                return reg_pb.PluginInfo(
                    type=proto.PLUGIN_TYPE,
                    name=server.driver_name,
                    endpoint=str(server.dra_socket),
                    supported_versions=[proto.DRA_V1, proto.DRA_V1BETA1, proto.HEALTH_V1ALPHA1, proto.HEALTH_V1],
                )

            def NotifyRegistrationStatus(self, request: Any, context: Any) -> Any:
                if request.plugin_registered:
                    log.info("registered with the kubelet")
                    server.registration_error = ""
                    server.registered.set()
                else:
                    server.registration_error = request.error
                    log.error("the kubelet refused the registration: %s", shorten(request.error, 1024))
                return reg_pb.RegistrationStatusResponse()

        return Registration()

    def stop(self, grace: float = 5.0) -> None:
        if self._health is not None:
            self._health.close()  # health streams end now, not after the grace period
        for server, sock in ((self._reg, self.registration_socket), (self._dra, self.dra_socket)):
            if server is not None:
                server.stop(grace).wait()
            sock.unlink(missing_ok=True)
