"""One HTTP/1.1 keep-alive connection that does the least work per exchange (``HttpKube``'s requests).

``http.client`` parses every response's header block through the ``email`` package and builds a request in
several steps: ~0.3 ms of CPU per API call on the kubelet plugin's prepare path, against ~0.13 ms for this
(issue 14, measured on the same API server). This sends a request in one write and reads the status line and
the headers that frame a body (``Content-Length``, ``Transfer-Encoding: chunked``, ``Connection``); a body
with neither is read to the connection's end. Nothing is retried; no ``Expect``, no compression, no
pipelining. Informational (1xx) answers are skipped. Any framing it cannot read is ``BadResponse``.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024  # status line + headers; the API server sends a few hundred bytes
RECV_BYTES = 64 * 1024


class BadResponse(http.client.HTTPException):
    """The server's answer is not HTTP/1.x this client can frame (or the connection ended inside it)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    will_close: bool  # the server closes the connection after this answer: do not reuse it


def _host_header(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Connection:
    """A connected (TLS or plain) socket and what was read past the last answer. Not thread-safe: one
    exchange at a time (``HttpKube``'s pool hands a connection to one thread)."""

    def __init__(self, sock: socket.socket, host: str, port: int) -> None:
        self.sock: socket.socket | None = sock
        self._host = _host_header(host, port).encode("ascii")
        self._buf = bytearray()
        self._deadline = 0.0

    @classmethod
    def open(cls, host: str, port: int, timeout: float, context: ssl.SSLContext | None) -> Connection:
        """Connect (and, with ``context``, complete the TLS handshake) within ``timeout`` seconds per step."""
        raw = socket.create_connection((host, port), timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = context.wrap_socket(raw, server_hostname=host) if context is not None else raw
        except BaseException:
            raw.close()
            raise
        return cls(sock, host, port)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> Response:
        """Send one request and read its whole answer within ``timeout`` seconds (``TimeoutError`` after that,
        however the server trickles its bytes)."""
        sock = self.sock
        if sock is None:
            raise BadResponse("the connection is closed")
        self._deadline = time.monotonic() + timeout
        sock.settimeout(timeout)
        lines = [b"%s %s HTTP/1.1" % (method.encode("ascii"), target.encode("ascii")), b"Host: " + self._host]
        lines += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
        if body is not None:
            lines.append(b"Content-Length: %d" % len(body))
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + (body or b""))  # one write: no Nagle/delayed-ACK stall
        while True:
            status, framing = self._head()
            if not 100 <= status < 200:
                break
        if method == "HEAD" or status in (204, 304):
            return Response(status, b"", framing.will_close)
        if framing.chunked:
            return Response(status, self._chunked(), framing.will_close)
        if framing.length is not None:
            return Response(status, self._exactly(framing.length), framing.will_close)
        return Response(status, self._to_end(), True)

    # --- reading -----------------------------------------------------------------------------------

    def _wait_budget(self) -> socket.socket:
        """The socket, its timeout set to what is left of the exchange's ``timeout``."""
        assert self.sock is not None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not come within the timeout")
        self.sock.settimeout(left)
        return self.sock

    def _recv(self) -> bytes:
        data = self._wait_budget().recv(RECV_BYTES)
        if not data:
            raise BadResponse("the server closed the connection before its answer was complete")
        return data

    def _line(self, limit: int) -> bytes:
        """Up to the next CRLF (taken off the buffer, without the CRLF)."""
        start = 0
        while (end := self._buf.find(b"\r\n", start)) < 0:
            if len(self._buf) > limit:
                raise BadResponse(f"a line of the answer is longer than {limit} bytes")
            start = max(0, len(self._buf) - 1)
            self._buf += self._recv()
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _head(self) -> tuple[int, _Framing]:
        status_line = self._line(MAX_HEAD_BYTES)
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise BadResponse(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        framing = _Framing(will_close=version == b"HTTP/1.0")
        size = len(status_line)
        while line := self._line(MAX_HEAD_BYTES):
            size += len(line)
            if size > MAX_HEAD_BYTES:
                raise BadResponse(f"the answer's headers are longer than {MAX_HEAD_BYTES} bytes")
            name, sep, value = line.partition(b":")
            if not sep:
                raise BadResponse(f"not a header line: {line[:80]!r}")
            framing.read(name.strip().lower(), value.strip().lower())
        return int(code), framing

    def _exactly(self, n: int) -> bytes:
        if len(self._buf) >= n:
            head = bytes(self._buf[:n])
            del self._buf[:n]
            return head
        out = bytearray(n)
        view = memoryview(out)
        have = len(self._buf)
        view[:have] = self._buf
        self._buf.clear()
        while have < n:
            got = self._wait_budget().recv_into(view[have:], min(n - have, RECV_BYTES))
            if not got:
                raise BadResponse("the server closed the connection before its answer was complete")
            have += got
        return bytes(out)

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self._line(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise BadResponse(f"not a chunk size: {size_line[:40]!r}") from None
            if size == 0:
                while self._line(MAX_HEAD_BYTES):  # trailers, then the empty line
                    pass
                return b"".join(parts)
            parts.append(self._exactly(size))
            if self._exactly(2) != b"\r\n":
                raise BadResponse("a chunk does not end with CRLF")

    def _to_end(self) -> bytes:
        parts = [bytes(self._buf)]
        self._buf.clear()
        while data := self._wait_budget().recv(RECV_BYTES):
            parts.append(data)
        return b"".join(parts)


class _Framing:
    __slots__ = ("chunked", "length", "will_close")

    def __init__(self, will_close: bool) -> None:
        self.chunked = False
        self.length: int | None = None
        self.will_close = will_close

    def read(self, name: bytes, value: bytes) -> None:
        if name == b"content-length":
            if not value.isdigit():
                raise BadResponse(f"Content-Length is not a number: {value[:40]!r}")
            self.length = int(value)
        elif name == b"transfer-encoding":
            self.chunked = value.rsplit(b",", 1)[-1].strip() == b"chunked"
            if not self.chunked:
                raise BadResponse(f"unsupported Transfer-Encoding: {value[:40]!r}")
        elif name == b"connection":
            if b"close" in value:
                self.will_close = True
            elif b"keep-alive" in value:
                self.will_close = False
