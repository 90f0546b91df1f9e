"""The HTTPS server: reviews over TLS, health, errors, certificate rotation, start and shutdown."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.webhook import ServerContexts, TlsFiles, WebhookServer, self_signed
from controller.webhook.command import ServeArgs, serve
from controller.webhook.server import Limits
from tests.webhook.reviews import DRIVER, obj, opaque, parameters, review


def client_context(files: TlsFiles) -> ssl.SSLContext:
    assert files.ca is not None
    return ssl.create_default_context(cafile=str(files.ca))


def request(port: int, files: TlsFiles, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(files), timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[WebhookServer, TlsFiles]]:
    files = self_signed(tmp_path / "tls")
    server = WebhookServer(ServerContexts(files), DRIVER, "127.0.0.1", 0)
    server.start()
    yield server, files
    server.shutdown()


def test_self_signed_files_are_written_with_a_private_key_only_the_owner_reads(tmp_path: Path) -> None:
    files = self_signed(tmp_path / "tls", ("127.0.0.1", "localhost", "webhook.ns.svc"))
    assert files.ca is not None and files.ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert files.key.stat().st_mode & 0o777 == 0o600


def test_review_over_tls_is_answered(running: tuple[WebhookServer, TlsFiles]) -> None:
    server, files = running
    body = review("ResourceClaim", "v1", obj("ResourceClaim", "v1", [opaque(parameters(strategy="Fast"))]))
    status, answer = request(server.port, files, "POST", "/validate", body)
    response = json.loads(answer)["response"]
    assert status == 200 and response["allowed"] is False
    assert "spec.devices.config[0].opaque.parameters.sharing.strategy" in response["status"]["message"]


def test_healthz_answers_ok(running: tuple[WebhookServer, TlsFiles]) -> None:
    server, files = running
    assert request(server.port, files, "GET", "/healthz") == (200, b"ok\n")


def test_unknown_paths_are_404_and_garbage_is_400(running: tuple[WebhookServer, TlsFiles]) -> None:
    server, files = running
    assert request(server.port, files, "POST", "/mutate", b"{}")[0] == 404
    status, text = request(server.port, files, "POST", "/validate", b"not json")
    assert status == 400 and b"not an AdmissionReview" in text


def test_a_client_that_does_not_trust_the_ca_is_refused(
    running: tuple[WebhookServer, TlsFiles], tmp_path: Path
) -> None:
    server, _ = running
    other = self_signed(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        request(server.port, other, "GET", "/healthz")
    assert request(server.port, running[1], "GET", "/healthz")[0] == 200  # the server survived it


def test_rotated_certificate_files_are_served_to_new_connections(running: tuple[WebhookServer, TlsFiles]) -> None:
    server, files = running
    assert files.ca is not None
    rotated = self_signed(files.ca.parent)  # a new CA and certificate, written over the old files
    os.utime(rotated.cert, (1, 2_000_000_000))  # a different mtime even within the filesystem's granularity
    assert request(server.port, rotated, "GET", "/healthz")[0] == 200


def test_shutdown_closes_the_port(tmp_path: Path) -> None:
    files = self_signed(tmp_path / "tls")
    server = WebhookServer(ServerContexts(files), DRIVER, "127.0.0.1", 0)
    server.start()
    port = server.port
    server.shutdown()
    with pytest.raises(ConnectionRefusedError):
        request(port, files, "GET", "/healthz")


def test_missing_certificate_files_fail_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ServerContexts(TlsFiles(tmp_path / "none.crt", tmp_path / "none.key"))


def test_serve_runs_until_sigterm_and_exits_0(tmp_path: Path) -> None:
    seen: list[int] = []

    def ready(server: WebhookServer) -> None:
        assert server.contexts.files.ca is not None
        seen.append(request(server.port, server.contexts.files, "GET", "/healthz")[0])
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()

    args = ServeArgs(driver=DRIVER, address="127.0.0.1", port=0, self_signed_dir=tmp_path / "tls")
    assert serve(args, on_ready=ready) == 0
    assert seen == [200]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


Start = Callable[[Limits], tuple[WebhookServer, TlsFiles]]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """``start(Limits(...))``: a server with short limits, so that tests of time limits stay fast."""
    servers: list[WebhookServer] = []
    files = self_signed(tmp_path / "tls")

    def make(limits: Limits) -> tuple[WebhookServer, TlsFiles]:
        server = WebhookServer(ServerContexts(files), DRIVER, "127.0.0.1", 0, limits)
        server.start()
        servers.append(server)
        return server, files

    yield make
    for server in servers:
        server.shutdown()


def tls_socket(port: int, files: TlsFiles) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return client_context(files).wrap_socket(sock, server_hostname="127.0.0.1")


def answer(sock: ssl.SSLSocket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def raw_post(port: int, files: TlsFiles, headers: str, body: bytes = b"") -> bytes:
    with tls_socket(port, files) as sock:
        sock.sendall(f"POST /validate HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode() + body)
        return answer(sock)


GOOD = review("ResourceClaim", "v1", obj("ResourceClaim", "v1", [opaque(parameters(strategy="MPS"))]))


def test_a_stalled_client_does_not_hold_up_other_reviews(running: tuple[WebhookServer, TlsFiles]) -> None:
    server, files = running
    with tls_socket(server.port, files) as stalled:
        stalled.sendall(f"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: {len(GOOD)}\r\n\r\n".encode())
        status, text = request(server.port, files, "POST", "/validate", GOOD)  # while the first one waits
        assert status == 200 and json.loads(text)["response"]["allowed"] is True
        stalled.sendall(GOOD)  # the stalled one was being served all along
        assert stalled.recv(65536).startswith(b"HTTP/1.1 200 OK")


def test_a_body_that_stops_arriving_is_answered_408_and_the_connection_closed(start: Start) -> None:
    server, files = start(Limits(idle_s=10, request_s=0.3))
    reply = raw_post(server.port, files, f"Content-Length: {len(GOOD)}\r\n", GOOD[:10])
    assert reply.startswith(b"HTTP/1.1 408") and b"Connection: close" in reply


def test_a_connection_that_says_nothing_is_closed_after_the_idle_limit(start: Start) -> None:
    server, files = start(Limits(idle_s=0.2))
    with tls_socket(server.port, files) as sock:
        assert answer(sock) == b""
    assert request(server.port, files, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [("", b"411"), ("Transfer-Encoding: chunked\r\n", b"411"), ("Content-Length: abc\r\n", b"400"),
     ("Content-Length: -5\r\n", b"400"), ("Content-Length: 0\r\n", b"400"),
     ("Content-Length: 5\r\nContent-Length: 6\r\n", b"400"), ("Content-Length: 3145729\r\n", b"413"),
     ("Content-Length: " + "9" * 5000 + "\r\n", b"413")],
    ids=["missing", "chunked", "not a number", "negative", "zero", "two lengths", "over 3 MiB", "5000 digits"],
)  # fmt: skip
def test_a_body_without_a_usable_length_is_refused_with_a_status(
    running: tuple[WebhookServer, TlsFiles], headers: str, status: bytes
) -> None:
    server, files = running
    reply = raw_post(server.port, files, headers)
    assert reply.startswith(b"HTTP/1.1 " + status) and b"Connection: close" in reply


def test_a_body_over_the_limit_is_refused_before_it_is_read(start: Start) -> None:
    server, files = start(Limits(max_body=1000))
    reply = raw_post(server.port, files, "Content-Length: 1001\r\n", b"x" * 1001)
    assert reply.startswith(b"HTTP/1.1 413") and b"the body is over 1000 bytes" in reply


def test_a_review_nested_too_deeply_is_answered_400_naming_why(running: tuple[WebhookServer, TlsFiles]) -> None:
    server, files = running
    status, text = request(server.port, files, "POST", "/validate", b"[" * 100_000 + b"]" * 100_000)
    assert status == 400 and b"nested too deeply" in text
    assert request(server.port, files, "GET", "/healthz")[0] == 200


def test_connections_over_the_limit_are_closed_and_the_slots_come_back(start: Start) -> None:
    server, files = start(Limits(connections=2))
    held = [tls_socket(server.port, files) for _ in range(2)]
    with pytest.raises(OSError):  # ssl.SSLError and ConnectionResetError are OSErrors
        request(server.port, files, "GET", "/healthz")
    for sock in held:
        sock.close()
    statuses = []
    for _ in range(50):  # a slot is free once the server has seen the close
        try:
            statuses.append(request(server.port, files, "GET", "/healthz")[0])
            break
        except OSError:
            threading.Event().wait(0.05)
    assert statuses == [200]
