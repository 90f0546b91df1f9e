"""The webhook's HTTPS server: ``POST /validate`` (AdmissionReview v1), ``GET /healthz``.

Explicit lifecycle: ``start()`` binds and serves in a thread (``port`` is then the bound port, so port 0
picks a free one), ``shutdown()`` stops accepting, lets reviews in flight finish (up to 5 s) and closes. TLS handshakes run in
each connection's own thread, with the certificate current at that moment (``tls.ServerContexts``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from controller.webhook.review import BadReview, decide
from controller.webhook.tls import ServerContexts

log = logging.getLogger("dra_driver.webhook")

VALIDATE_PATH = "/validate"
HEALTH_PATHS = ("/healthz", "/readyz")
MAX_BODY = 3 * 1024 * 1024  # the API server's own request size limit
HANDSHAKE_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 5.0
POLL_S = 0.1  # how soon serve_forever notices shutdown()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], contexts: ServerContexts, driver: str) -> None:
        self.contexts = contexts
        self.driver = driver
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._in_flight = 0
        self._idle = threading.Condition()
        super().__init__(address, _Handler)

    @contextlib.contextmanager
    def review(self) -> Iterator[None]:
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no review is being answered; False if some still are after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        # wrap_socket takes over the connection's descriptor: the TLS socket is the one to close
        with self.contexts.current().wrap_socket(request, server_side=True) as tls:
            _Handler(tls, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("connection from %s failed", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path in HEALTH_PATHS:
            self._send(HTTPStatus.OK, b"ok\n", "text/plain")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != VALIDATE_PATH:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._send(HTTPStatus.BAD_REQUEST, b"a body of 1 byte to 3 MiB is required\n", "text/plain")
            return
        with self.server.review():
            self._review(self.rfile.read(length))

    def _review(self, body: bytes) -> None:
        try:
            decision = decide(body, self.server.driver)
        except BadReview as e:
            log.warning("bad review from %s: %s", self.client_address[0], e)
            self._send(HTTPStatus.BAD_REQUEST, f"{e}\n".encode(), "text/plain")
            return
        if decision.allowed:
            log.info("allowed %s", decision.what)
        else:
            log.info("denied %s: %s", decision.what, decision.message)
        self._send(HTTPStatus.OK, json.dumps(decision.review()).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)


class WebhookServer:
    def __init__(self, contexts: ServerContexts, driver: str, address: str = "0.0.0.0", port: int = 8443) -> None:
        self.contexts = contexts
        self.driver = driver
        self.address = address
        self.requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the webhook server is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._server = _Server((self.address, self.requested_port), self.contexts, self.driver)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": POLL_S}, name="webhook", daemon=True
        )
        self._thread.start()
        log.info("serving %s and %s on https://%s:%d", VALIDATE_PATH, HEALTH_PATHS[0], self.address, self.port)

    def shutdown(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()  # no new connections are accepted
        if not self._server.drain(DRAIN_TIMEOUT_S):
            log.warning("reviews still in flight after %.0f s; stopping anyway", DRAIN_TIMEOUT_S)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        log.info("webhook server stopped")
