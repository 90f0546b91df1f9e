"""Every API request is bounded by its connect and read timeouts: a server that never answers costs one
timeout (no hidden urllib3 retries) and becomes ``ApiUnavailable`` with a message that says so."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from dra_driver.k8s import ApiError, ApiUnavailable, Kube, Timeouts


class SilentServer:
    """Accepts TCP connections, reads whatever comes and never answers (an API server that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            self._conns.append(conn)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.sock.close()
        for conn in self._conns:
            conn.close()
        self._thread.join(2)


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def _kube(url: str, timeouts: Timeouts) -> Kube:
    cfg = client.Configuration()
    cfg.host = url
    cfg.verify_ssl = False
    return Kube(client.ApiClient(cfg), timeouts)


@pytest.mark.parametrize("method", ["GET", "PUT", "POST", "DELETE"])
def test_a_server_that_never_answers_costs_one_read_timeout_and_one_connection(
    silent: SilentServer, method: str
) -> None:
    kube = _kube(f"http://127.0.0.1:{silent.port}", Timeouts(connect=2, read=0.5))
    began = time.monotonic()
    with pytest.raises(ApiUnavailable) as exc:
        kube.request(method, "/api/v1/nodes/a", body={} if method in ("PUT", "POST") else None)
    elapsed = time.monotonic() - began
    assert elapsed < 1.5, f"{elapsed:.1f}s: retried?"
    assert silent.accepted == 1
    assert str(exc.value).startswith(f"API server did not answer within 0.5s: {method} /api/v1/nodes/a")
    assert exc.value.status == 0
    assert isinstance(exc.value, ApiError), "callers that handle ApiError handle this too"


def test_a_tls_handshake_that_never_completes_is_bounded_by_the_connect_timeout(silent: SilentServer) -> None:
    kube = _kube(f"https://127.0.0.1:{silent.port}", Timeouts(connect=0.5, read=5))
    began = time.monotonic()
    with pytest.raises(ApiUnavailable) as exc:
        kube.get("/api/v1/nodes/a")
    assert time.monotonic() - began < 2
    assert str(exc.value).startswith("API server did not answer within 0.5s: GET /api/v1/nodes/a")


def test_a_refused_connection_says_the_server_is_unreachable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    kube = _kube(f"http://127.0.0.1:{port}", Timeouts(connect=1, read=1))
    with pytest.raises(ApiUnavailable) as exc:
        kube.list("/api/v1/nodes")
    assert str(exc.value).startswith("API server unreachable: GET /api/v1/nodes")


def test_a_watch_waits_its_own_timeout_plus_the_read_timeout(silent: SilentServer) -> None:
    kube = _kube(f"http://127.0.0.1:{silent.port}", Timeouts(connect=1, read=0.3))
    began = time.monotonic()
    with pytest.raises(ApiUnavailable):
        kube.watch("/api/v1/nodes", "1", timeout_s=1)
    assert 1.2 < time.monotonic() - began < 3
