"""The webhook's HTTPS server: ``POST /validate`` (AdmissionReview v1), ``GET /healthz``.

Explicit lifecycle: ``start()`` binds and serves in a thread (``port`` is then the bound port, so port 0
picks a free one), ``shutdown()`` stops accepting, lets reviews in flight finish (up to 5 s) and closes. TLS handshakes run in
each connection's own thread, with the certificate current at that moment (``tls.ServerContexts``).

No client can hold it (``Limits``): every connection has its own thread, at most ``connections`` at once
(more are closed unanswered); a connection silent for ``idle_s`` is closed; a request (line, headers and
body) must arrive within ``request_s`` of the server starting to wait for it, else the connection is closed
(answered 408 if the body was being read); a body needs a numeric ``Content-Length`` (else 411 or 400) of
at most ``max_body`` (else 413). Refusals close the connection after reading what the client still sends
for up to ``LINGER_S``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from api.config.strict import MAX_DOCUMENT_BYTES
from controller.webhook.review import BadReview, decide
from controller.webhook.tls import ServerContexts

log = logging.getLogger("dra_driver.webhook")

VALIDATE_PATH = "/validate"
HEALTH_PATHS = ("/healthz", "/readyz")
MAX_BODY = MAX_DOCUMENT_BYTES  # 3 MiB, the API server's own request size limit
HANDSHAKE_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 5.0
POLL_S = 0.1  # how soon serve_forever notices shutdown()
LINGER_S = 1.0  # reading what a refused client still sends, before closing
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Limits:
    """What one client may take. The defaults fit the API server's call (10 s timeout, 3 MiB at most)."""

    max_body: int = MAX_BODY  # bytes
    idle_s: float = 10.0  # silence on a connection, between requests or within one
    request_s: float = 15.0  # to receive one request whole, from when the server starts waiting for it
    connections: int = 256  # connections served at once; more are closed at once


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes, each read waiting at most ``idle_s`` and none past ``deadline``."""

    def __init__(self, connection: socket.socket, idle_s: float) -> None:
        self.connection = connection
        self.idle_s = idle_s
        self.deadline = math.inf  # time.monotonic() value

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.connection.settimeout(min(self.idle_s, remaining))
        return self.connection.recv_into(buffer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], contexts: ServerContexts, driver: str, limits: Limits) -> None:
        self.contexts = contexts
        self.driver = driver
        self.limits = limits
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._in_flight = 0
        self._idle = threading.Condition()
        self._slots = threading.BoundedSemaphore(limits.connections)
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

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("%d connections open: closing the one from %s", self.limits.connections, client_address[0])
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except RuntimeError:  # no thread could be started
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

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

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced by one that keeps the deadlines
        self.reader = _DeadlineReader(self.connection, self.server.limits.idle_s)
        self.rfile = io.BufferedReader(self.reader)

    def handle_one_request(self) -> None:
        # A read past the deadline raises TimeoutError: the base class then closes the connection.
        self.reader.deadline = time.monotonic() + self.server.limits.request_s
        super().handle_one_request()

    def do_GET(self) -> None:
        if self.path in HEALTH_PATHS:
            self._send(HTTPStatus.OK, b"ok\n", "text/plain")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != VALIDATE_PATH:
            self._refuse(HTTPStatus.NOT_FOUND, "not found")  # its body, if any, is not read
            return
        length = self._content_length()
        if length is None:
            return
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self._refuse(HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {self.server.limits.request_s} s")
            return
        if len(body) < length:
            self._refuse(HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of {length} bytes")
            return
        with self.server.review():
            self._review(body)

    def _content_length(self) -> int | None:
        """The body's length, or None once the request is answered with why it cannot be read."""
        limit = self.server.limits.max_body
        values = self.headers.get_all("Content-Length") or []
        if self.headers.get("Transfer-Encoding") is not None or not values:
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required (no chunked bodies)")
            return None
        if len(set(values)) > 1 or not _DIGITS.fullmatch(values[0].strip()):
            self._refuse(HTTPStatus.BAD_REQUEST, "Content-Length must be one decimal number")
            return None
        text = values[0].strip().lstrip("0") or "0"
        if len(text) > len(str(limit)) or int(text) > limit:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {limit} bytes")
            return None
        if text == "0":
            self._refuse(HTTPStatus.BAD_REQUEST, "the body is empty; an AdmissionReview is required")
            return None
        return int(text)

    def _refuse(self, status: HTTPStatus, reason: str) -> None:
        """Answer ``status`` and close: the rest of the request is not read."""
        log.warning("%d to %s: %s", status, self.client_address[0], reason)
        self.close_connection = True
        self._send(status, f"{reason}\n".encode(), "text/plain")
        self._linger()

    def _linger(self) -> None:
        """Drop what the client still sends, for up to ``LINGER_S``, before the connection is closed: closing
        with unread bytes resets it, and a reset can discard the answer before the client reads it."""
        deadline = time.monotonic() + LINGER_S
        try:
            self.connection.shutdown(socket.SHUT_WR)  # the answer is complete; TLS ends here too
            while (remaining := deadline - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                if not self.connection.recv(65536):
                    break
        except OSError:  # reset, timed out: either way the connection is done
            pass

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
        self.connection.settimeout(self.server.limits.idle_s)  # a client that does not read is dropped too
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)


class WebhookServer:
    def __init__(
        self,
        contexts: ServerContexts,
        driver: str,
        address: str = "0.0.0.0",
        port: int = 8443,
        limits: Limits | None = None,
    ) -> None:
        self.contexts = contexts
        self.driver = driver
        self.address = address
        self.requested_port = port
        self.limits = limits or Limits()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the webhook server is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._server = _Server((self.address, self.requested_port), self.contexts, self.driver, self.limits)
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
