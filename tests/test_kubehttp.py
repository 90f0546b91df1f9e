"""HttpKube: Kube's interface over one keep-alive connection per thread, with its timeouts and errors."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dra_driver.errors import ConfigError
from dra_driver.k8s import ApiError, ApiUnavailable, Timeouts
from dra_driver.kubehttp import Credentials, HttpKube, credentials_from_kubeconfig
from sandbox.kubeconfig import write_kubeconfig
from sandbox.pki import ADMIN, ServingNames, create_pki

CLAIM = "/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims/c"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: ApiStandIn

    def log_message(self, *_: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization"), self.client_address))
        if "watch=true" in self.path:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for kind in ("ADDED", "MODIFIED"):
                line = json.dumps({"type": kind, "object": {"metadata": {"name": "c"}}}).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == CLAIM:
            self._answer(200, {"metadata": {"name": "c"}})
        else:
            self._answer(404, {"kind": "Status", "message": "not found here"})

    def do_PATCH(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.seen.append((self.command, self.path, self.headers["Content-Type"], self.rfile.read(length)))
        self._answer(422, {"kind": "Status", "message": "refused"})


class ApiStandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[tuple[Any, ...]] = []


@pytest.fixture
def api() -> Iterator[ApiStandIn]:
    server = ApiStandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def kubes() -> Iterator[list[HttpKube]]:
    made: list[HttpKube] = []
    yield made
    for kube in made:
        kube.close()


def _kube(made: list[HttpKube], port: int, timeouts: Timeouts | None = None) -> HttpKube:
    made.append(HttpKube(Credentials("127.0.0.1", port, None, token="t0k"), timeouts))
    return made[-1]


def test_calls_share_one_connection_and_carry_the_token(api: ApiStandIn, kubes: list[HttpKube]) -> None:
    kube = _kube(kubes, api.server_address[1])
    for _ in range(5):
        assert kube.get(CLAIM) == {"metadata": {"name": "c"}}
    assert kube.get(CLAIM + "x") is None  # 404
    assert len({seen[3] for seen in api.seen}) == 1  # one client port: one connection
    assert {seen[2] for seen in api.seen} == {"Bearer t0k"}
    assert kube.calls == {"GET": 6}


def test_error_status_is_an_api_error_with_the_servers_message(api: ApiStandIn, kubes: list[HttpKube]) -> None:
    kube = _kube(kubes, api.server_address[1])
    with pytest.raises(ApiError, match="PATCH /p: HTTP 422: refused") as e:
        kube.patch("/p", {"a": 1})
    assert e.value.status == 422
    assert api.seen[-1][2:] == ("application/merge-patch+json", b'{"a": 1}')  # as the kubernetes client sends it
    assert kube.get(CLAIM) is not None  # the connection is still good after an error status


def test_a_connection_the_server_closed_while_idle_is_replaced(api: ApiStandIn, kubes: list[HttpKube]) -> None:
    kube = _kube(kubes, api.server_address[1])
    kube.get(CLAIM)
    kube._idle[-1].sock.shutdown(socket.SHUT_RDWR)  # as if the server had hung up: readable, EOF
    assert kube.get(CLAIM) is not None
    assert len({seen[3] for seen in api.seen}) == 2


def test_threads_take_idle_connections_from_one_pool_instead_of_opening_their_own(
    api: ApiStandIn, kubes: list[HttpKube]
) -> None:
    kube = _kube(kubes, api.server_address[1])
    taken = [kube._pooled("GET", CLAIM) for _ in range(4)]  # four in use at once, as a burst of threads holds them
    ports = {c.sock.getsockname()[1] for c in taken if c.sock is not None}
    for conn in taken:
        kube._release(conn)
    threads = [threading.Thread(target=kube.get, args=(CLAIM,)) for _ in range(4)]  # never more in use than idle
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(api.seen) == 4
    assert {seen[3][1] for seen in api.seen} <= ports  # a later burst reuses them: no new connection


def test_fill_opens_connections_until_that_many_are_idle_and_calls_use_them(
    api: ApiStandIn, kubes: list[HttpKube]
) -> None:
    kube = _kube(kubes, api.server_address[1])
    kube.get(CLAIM)  # one idle already
    assert kube.fill(3) == 2
    assert kube.fill(3) == 0
    assert len(kube._idle) == 3
    ports = {c.sock.getsockname()[1] for c in kube._idle if c.sock is not None}
    taken = [kube._pooled("GET", CLAIM) for _ in range(3)]
    assert {c.sock.getsockname()[1] for c in taken if c.sock is not None} == ports  # no new connection
    for conn in taken:
        kube._release(conn)


def test_watch_streams_events_on_its_own_connection(api: ApiStandIn, kubes: list[HttpKube]) -> None:
    kube = _kube(kubes, api.server_address[1])
    events = list(kube.watch("/apis/x", "7", 30))
    assert [kind for kind, _ in events] == ["ADDED", "MODIFIED"]
    assert "resourceVersion=7" in api.seen[-1][1] and "timeoutSeconds=30" in api.seen[-1][1]


def test_a_server_that_never_answers_costs_one_read_timeout(kubes: list[HttpKube]) -> None:
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        kube = _kube(kubes, silent.getsockname()[1], Timeouts(connect=1.0, read=0.3))
        started = time.monotonic()
        with pytest.raises(ApiUnavailable, match=r"did not answer within 0\.3s: GET /x"):
            kube.get("/x")
        assert time.monotonic() - started < 2.0
    finally:
        silent.close()


def test_a_refused_connection_says_the_server_is_unreachable(kubes: list[HttpKube]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(ApiUnavailable, match="API server unreachable: GET /x"):
        _kube(kubes, port).get("/x")


def test_kubeconfig_with_an_exec_plugin_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {exec: {command: aws}}}]\n"
    )
    with pytest.raises(ConfigError, match=r"users\[u\]\.exec"):
        credentials_from_kubeconfig(path)


def test_kubeconfig_token_and_plain_http_server_are_read(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:8080'}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
    )
    assert credentials_from_kubeconfig(path) == Credentials("127.0.0.1", 8080, None, token="abc")


def test_kubeconfig_without_a_current_context_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: []\n")
    with pytest.raises(ConfigError, match="current-context"):
        credentials_from_kubeconfig(path)


def test_tls_with_the_kubeconfigs_inline_ca_and_client_certificate(tmp_path: Path, kubes: list[HttpKube]) -> None:
    pki = create_pki(tmp_path / "pki", ServingNames())
    server = ApiStandIn()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_cert))
    tls.load_cert_chain(pki.serving_cert, pki.serving_key)
    tls.verify_mode = ssl.CERT_REQUIRED  # the client must present a certificate of the CA
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, pki, ADMIN)
        kube = HttpKube.from_kubeconfig(kubeconfig)
        kubes.append(kube)
        assert kube.get(CLAIM) == {"metadata": {"name": "c"}}
        assert server.seen[-1][2] is None  # certificate, no token
    finally:
        server.shutdown()
        server.server_close()
