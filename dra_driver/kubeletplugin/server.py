"""The plugin's gRPC services on unix sockets: DRA (v1, v1beta1), health (v1alpha1, v1), registration.

Start order: remove stale sockets, serve the DRA socket, then the registration socket (the kubelet
connects to the DRA socket as soon as it sees the registration socket). Stop order is the reverse.
Socket names carry the plugin pod's UID, so two plugin pods of a rolling update never clash.

Served by our own gRPC server (dra_driver/h2grpc): the thread that reads a call answers it, and the
plugin does not import ``grpc``.

Input hygiene (validation.py): a DRA request with too many claims is refused (INVALID_ARGUMENT), messages
over ``MAX_MESSAGE_BYTES`` are refused (RESOURCE_EXHAUSTED) before they are read whole, and an invalid
claim reference gets a per-claim error without reaching the handler.

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from api.gen.dra.v1 import api_pb2 as dra_v1_pb
from api.gen.dra.v1beta1 import api_pb2 as dra_v1beta1_pb
from api.gen.drahealth.v1 import api_pb2 as health_v1_pb
from api.gen.drahealth.v1alpha1 import api_pb2 as health_v1alpha1_pb
from api.gen.pluginregistration.v1 import api_pb2 as reg_pb
from dra_driver.h2grpc.call import Call, Method
from dra_driver.h2grpc.server import Server, method_path
from dra_driver.h2grpc.status import Status
from dra_driver.k8s import shorten
from dra_driver.kubeletplugin import protocol as proto
from dra_driver.kubeletplugin import validation
from dra_driver.kubeletplugin.health import HEALTH_CHECK_TIMEOUT_S, HEALTH_RESEND_S, HealthFeed

log = logging.getLogger(__name__)
REGISTRATION_MAX_MESSAGE_BYTES = 64 * 1024  # the kubelet sends a bool and an error string
DRA_MAX_CALLS = 16  # calls in progress at once on one connection (the kubelet holds one)


class Answered(threading.Event):
    """Set once a call's answer has gone out (or its client went away): the call has ended. Work left for after
    the answer is registered with ``then`` and started by the thread that sets it, so that nothing wakes up
    while the answer is still being made."""

    def __init__(self) -> None:
        super().__init__()
        self._after: list[Callable[[], None]] | None = []
        self._after_lock = threading.Lock()

    def then(self, work: Callable[[], None]) -> None:
        """Run ``work()`` once the call has ended: now, if it has."""
        with self._after_lock:
            if self._after is not None:
                self._after.append(work)
                return
        work()

    def set(self) -> None:
        with self._after_lock:
            after, self._after = self._after or [], None
        super().set()
        for work in after:
            work()


class DraHandler(Protocol):
    def prepare(self, claims: list[proto.ClaimRef], answered: Answered | None = None) -> dict[str, proto.PrepareResult]:
        """``answered`` is set once the answer has gone out (the call ended): work a handler leaves for after the
        answer (a status write) is started from it (``Answered.then``), so that it does not compete with the
        answer."""
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


def _admitted(request: Any, call: str) -> tuple[list[proto.ClaimRef], dict[str, str]]:
    """The request's valid claims and the errors of its invalid ones; too many claims abort the call."""
    problem = validation.too_many_claims(len(request.claims))
    if problem is not None:
        log.warning("%s refused: %s", call, problem)
        Call.abort(Status.INVALID_ARGUMENT, problem)
    valid, refused = validation.split_claims(proto.claims_from_pb(request.claims))
    for uid, error in refused.items():
        log.warning("%s: claim %s refused: %s", call, shorten(uid), error)
    return valid, refused


def _dra_methods(pb: Any, version: str, handler: DraHandler) -> dict[str, Method]:
    def prepare(request: Any, call: Call) -> Any:
        valid, refused = _admitted(request, "NodePrepareResources")
        answered = Answered()
        call.add_callback(answered.set)  # the call ended: its answer went out (or its client went away)
        results = handler.prepare(valid, answered) if valid else {}
        results |= {uid: proto.PrepareResult(error=error) for uid, error in refused.items()}
        return proto.prepare_response(version, results)

    def unprepare(request: Any, call: Call) -> Any:
        valid, refused = _admitted(request, "NodeUnprepareResources")
        errors = handler.unprepare(valid) if valid else {}
        return proto.unprepare_response(version, errors | refused)

    return {
        method_path(pb, "DRAPlugin", "NodePrepareResources"): Method(pb.NodePrepareResourcesRequest, prepare),
        method_path(pb, "DRAPlugin", "NodeUnprepareResources"): Method(pb.NodeUnprepareResourcesRequest, unprepare),
    }


def _health_methods(pb: Any, feed: HealthFeed) -> dict[str, Method]:
    def watch(request: Any, call: Call) -> Iterator[Any]:
        call.add_callback(feed.wake)  # the client went away: the stream stops waiting at once
        for snapshot in feed.stream(call.is_active):
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

    path = method_path(pb, "DRAResourceHealth", "NodeWatchResources")
    return {path: Method(pb.NodeWatchResourcesRequest, watch, streaming=True)}


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
        self._dra: Server | None = None
        self._reg: Server | None = None

    def start(self) -> None:
        self.dra_socket.parent.mkdir(parents=True, exist_ok=True)
        self.registration_socket.parent.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale_sockets(self.dra_socket.parent, "*.sock") + remove_stale_sockets(
            self.registration_socket.parent, f"{self.driver_name}-*reg.sock"
        ):
            log.info("removed stale socket %s", stale)
        self.dra_socket.unlink(missing_ok=True)
        self.registration_socket.unlink(missing_ok=True)
        feed = self._health = HealthFeed(self.handler.health, self.health_resend_s)
        methods = (
            _dra_methods(dra_v1_pb, proto.DRA_V1, self.handler)
            | _dra_methods(dra_v1beta1_pb, proto.DRA_V1BETA1, self.handler)
            | _health_methods(health_v1alpha1_pb, feed)
            | _health_methods(health_v1_pb, feed)
        )
        self._dra = Server(self.dra_socket, methods, validation.MAX_MESSAGE_BYTES, DRA_MAX_CALLS)
        self._dra.start()
        self._reg = Server(self.registration_socket, self._registration(), REGISTRATION_MAX_MESSAGE_BYTES, 2)
        self._reg.start()
        log.info("serving DRA on %s, registration on %s", self.dra_socket, self.registration_socket)

    def _registration(self) -> dict[str, Method]:
        def get_info(request: Any, call: Call) -> Any:
            return reg_pb.PluginInfo(
                type=proto.PLUGIN_TYPE,
                name=self.driver_name,
                endpoint=str(self.dra_socket),
                supported_versions=[proto.DRA_V1, proto.DRA_V1BETA1, proto.HEALTH_V1ALPHA1, proto.HEALTH_V1],
            )

        def notify(request: Any, call: Call) -> Any:
            if request.plugin_registered:
                log.info("registered with the kubelet")
                self.registration_error = ""
                self.registered.set()
            else:
                self.registration_error = request.error
                log.error("the kubelet refused the registration: %s", shorten(request.error, 1024))
            return reg_pb.RegistrationStatusResponse()

        return {
            method_path(reg_pb, "Registration", "GetInfo"): Method(reg_pb.InfoRequest, get_info),
            method_path(reg_pb, "Registration", "NotifyRegistrationStatus"): Method(reg_pb.RegistrationStatus, notify),
        }

    def stop(self, grace: float = 5.0) -> None:
        if self._health is not None:
            self._health.close()  # health streams end now, not after the grace period
        for server, sock in ((self._reg, self.registration_socket), (self._dra, self.dra_socket)):
            if server is not None:
                server.stop(grace)
            sock.unlink(missing_ok=True)
