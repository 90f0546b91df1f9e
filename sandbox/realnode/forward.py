"""The API server's port, reachable from the host's loopback although the control plane runs in the sandbox's
network namespace.

``dra-gpu sandbox up`` binds ``127.0.0.1:<port>`` in the host's namespace and hands the listening socket to
the supervisor, which enters its own namespace and starts the API server on the same port there. A socket
stays in the namespace it was created in, so the supervisor accepts host connections on the inherited socket
and relays each one to the API server over the sandbox's loopback. TLS passes through untouched: the
kubeconfig names ``https://127.0.0.1:<port>`` on both sides.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

log = logging.getLogger(__name__)
BUFFER = 64 * 1024


def bind_host_listener() -> socket.socket:
    """A listening socket on a free port of this namespace's loopback (call it before leaving the namespace)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.set_inheritable(True)
    return listener


class Forwarder:
    """Relays every connection accepted on ``listener`` to ``127.0.0.1:port`` of the current namespace."""

    def __init__(self, listener: socket.socket, port: int) -> None:
        self._listener = listener
        self._port = port
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="api-forwarder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self._port), timeout=10)
        except OSError as exc:
            log.warning("API forwarder: cannot reach the API server on port %d: %s", self._port, exc)
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        client.close()
        upstream.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then half-close ``sink``."""
    try:
        while data := source.recv(BUFFER):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            source.shutdown(socket.SHUT_RD)
