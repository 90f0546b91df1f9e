"""The HTTPS server: reviews over TLS, health, errors, certificate rotation, start and shutdown."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.webhook import ServerContexts, TlsFiles, WebhookServer, self_signed
from controller.webhook.command import ServeArgs, serve
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
