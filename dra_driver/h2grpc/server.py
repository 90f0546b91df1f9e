"""A gRPC server on one unix socket: accepts connections, serves the registered methods, stops gracefully.

Methods are registered by full path (``/package.Service/Method``; ``method_path`` builds it from a protobuf
module's service descriptor). Answers ``UNIMPLEMENTED`` for any other path, ``RESOURCE_EXHAUSTED`` for a
request message over ``max_message_bytes``; a handler's ``Abort`` becomes its status, any other exception
``UNKNOWN``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

from dra_driver.h2grpc.call import Method
from dra_driver.h2grpc.connection import Connection

log = logging.getLogger(__name__)
ACCEPT_POLL_S = 0.2  # shutting a listening socket down does not always wake accept(): it also polls
MAX_CONNECTIONS = 32  # the kubelet holds one per socket; past this an idle connection is closed to make room


def method_path(pb_module: Any, service: str, method: str) -> str:
    """``/package.Service/Method`` of ``service`` in the generated ``*_pb2`` module."""
    return f"/{pb_module.DESCRIPTOR.services_by_name[service].full_name}/{method}"


class Server:
    def __init__(self, path: Path, methods: dict[str, Method], max_message_bytes: int, max_calls: int) -> None:
        self.path = path
        self.methods = dict(methods)
        self.max_message_bytes = max_message_bytes
        self.max_calls = max_calls
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            listener.listen(64)
            listener.settimeout(ACCEPT_POLL_S)  # accept() looks at _stopping this often (see _accept)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, name=f"h2grpc-accept-{self.path.name}", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                if self._stopping:
                    return
                continue
            except OSError as e:
                if self._stopping:
                    return  # the listener was shut down
                log.warning("accepting a connection on %s failed (%s); retrying", self.path, e)
                time.sleep(0.1)  # e.g. out of file descriptors: the next try may succeed
                continue
            sock.settimeout(None)  # the connection blocks; only the listener polls
            with self._lock:
                if self._stopping:
                    sock.close()
                    continue
                if len(self._connections) >= MAX_CONNECTIONS and not self._evict_idle():
                    log.warning("%s: %d connections, none idle: refusing another", self.path, MAX_CONNECTIONS)
                    sock.close()
                    continue
                connection = Connection(sock, self.methods, self.max_message_bytes, self.max_calls, self._forget)
                self._connections.add(connection)
            connection.start()

    def _evict_idle(self) -> bool:
        """Close one connection that has no call open, to make room; False when every one is busy."""
        for connection in self._connections:
            if connection.in_progress() == 0:
                connection.close()
                self._connections.discard(connection)
                return True
        return False

    def _forget(self, connection: Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def stop(self, grace: float) -> None:
        """Accept nothing more, refuse new calls, let the calls in progress finish for up to ``grace`` s,
        then close every connection (calls still open are cancelled)."""
        with self._lock:
            self._stopping = True
            connections = list(self._connections)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            self._listener.close()
        if self._acceptor is not None:
            self._acceptor.join(1.0)
        deadline = time.monotonic() + grace
        busy = sum(c.go_away() for c in connections)
        while busy and time.monotonic() < deadline:
            time.sleep(0.01)
            busy = sum(c.in_progress() for c in connections)
        for connection in connections:
            connection.close()
        for connection in connections:
            connection.ended.wait(max(0.0, deadline - time.monotonic()) + 1.0)
