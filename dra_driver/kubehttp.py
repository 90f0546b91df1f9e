"""``HttpKube``: the ``Kube`` interface over persistent HTTP/1.1 connections.

For the kubelet plugin's hot path and start-up (issue 14): the ``kubernetes`` client costs ~5 ms per call and
0.3 s to import. Same credentials (a kubeconfig's server, CA, client certificate or token; in-cluster: the
service account's token and CA), same errors (``ApiError``, ``ApiUnavailable``), same timeouts on every call,
no retries. A request takes an idle keep-alive connection from a pool shared by all threads (checked for a close
by the server before reuse, not retried after a failure) and gives it back once its answer is read, so a burst
of threads (the capability probe, a new slice generation) reuses the connections of the last one instead of
each opening (and the API server accepting) a TLS connection of its own; at most ``IDLE_MAX`` are kept. Requests
are framed by ``http11.Connection`` (one write per request, only the headers that frame a body read); a watch
gets an ``http.client`` connection of its own, closed when the stream ends.

Supported kubeconfig credentials: ``certificate-authority(-data)``, ``insecure-skip-tls-verify``,
``client-certificate(-data)`` + ``client-key(-data)``, ``token``, ``tokenFile``. Anything else (exec plugins,
auth providers) is a ``ConfigError`` naming the field: use ``Kube`` for those.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import select
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from dra_driver import http11
from dra_driver.errors import ConfigError
from dra_driver.k8s import ApiError, ApiUnavailable, Kube, Obj, Timeouts, WatchStream, shorten

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
IDLE_MAX = 8  # idle connections kept (the plugin's busiest bursts: 5 probe dry runs, 4 slice writers)
TOKEN_REREAD_S = 60.0  # bound service-account tokens rotate; the kubelet refreshes the file well before expiry


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    context: ssl.SSLContext | None  # None: plain HTTP (a test server)
    token: str | None = None
    token_file: Path | None = None


def _data_or_file(entry: dict[str, Any], key: str, where: str) -> bytes | None:
    if f"{key}-data" in entry:
        try:
            return base64.b64decode(entry[f"{key}-data"], validate=True)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}.{key}-data", f"is not base64: {exc}") from exc
    if key in entry:
        return Path(entry[key]).read_bytes()
    return None


def _ssl_context(cluster: dict[str, Any], user: dict[str, Any], where: str) -> ssl.SSLContext:
    ca = _data_or_file(cluster, "certificate-authority", f"{where}.cluster")
    context = ssl.create_default_context(cadata=ca.decode() if ca else None)
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert = _data_or_file(user, "client-certificate", f"{where}.user")
    key = _data_or_file(user, "client-key", f"{where}.user")
    if (cert is None) != (key is None):
        raise ConfigError(f"{where}.user", "client-certificate and client-key come together")
    if cert is not None and key is not None:
        with tempfile.TemporaryDirectory(prefix="kubehttp-") as tmp:  # ssl loads key pairs from files only
            pair = Path(tmp) / "client.pem"
            fd = os.open(pair, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(cert.rstrip(b"\n") + b"\n" + key)
            context.load_cert_chain(pair)
    return context


def _named(entries: Any, name: str, kind: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return dict(entry.get(kind) or {})
    raise ConfigError(f"{kind}s", f"no {kind} named {name!r} in the kubeconfig")


def credentials_from_kubeconfig(path: Path) -> Credentials:
    """The current context's server and credentials; ``ConfigError`` names what is missing or unsupported."""
    import yaml  # a kubeconfig is YAML; loaded only here

    doc = yaml.safe_load(path.read_text()) or {}
    context_name = doc.get("current-context")
    if not context_name:
        raise ConfigError("current-context", f"{path} names no current context")
    context = _named(doc.get("contexts"), context_name, "context")
    cluster = _named(doc.get("clusters"), str(context.get("cluster")), "cluster")
    user = _named(doc.get("users"), str(context.get("user")), "user")
    for unsupported in ("exec", "auth-provider", "username"):
        if unsupported in user:
            raise ConfigError(f"users[{context.get('user')}].{unsupported}", "is not supported by HttpKube; use Kube")
    url = urlsplit(str(cluster.get("server", "")))
    if url.scheme not in ("https", "http") or not url.hostname:
        raise ConfigError("clusters.cluster.server", f"{cluster.get('server')!r} is not an http(s) URL")
    where = f"context {context_name!r}"
    return Credentials(
        url.hostname,
        url.port or (443 if url.scheme == "https" else 80),
        _ssl_context(cluster, user, where) if url.scheme == "https" else None,
        token=user.get("token"),
        token_file=Path(user["tokenFile"]) if "tokenFile" in user else None,
    )


def credentials_in_cluster(root: Path = SERVICE_ACCOUNT) -> Credentials:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("KUBERNETES_SERVICE_HOST", "not set: not running in a pod; pass --kubeconfig")
    context = ssl.create_default_context(cafile=str(root / "ca.crt"))
    return Credentials(host, int(port), context, token_file=root / "token")


class HttpKube(Kube):
    """``Kube`` over persistent connections (a pool shared by the threads). Thread-safe."""

    def __init__(self, credentials: Credentials, timeouts: Timeouts | None = None) -> None:
        self.credentials = credentials
        self.timeouts = timeouts or Timeouts()
        self.calls: dict[str, int] = {}
        self._idle: list[http11.Connection] = []  # not in use; the most recently used last
        self._open: set[http11.Connection] = set()  # idle or in use, for close()
        self._token_lock = threading.Lock()
        self._token: tuple[str | None, float] = (credentials.token, 0.0)

    @classmethod
    def from_kubeconfig(cls, path: Path | str | None = None, timeouts: Timeouts | None = None) -> HttpKube:
        if path is None:
            return cls(credentials_in_cluster(), timeouts)
        return cls(credentials_from_kubeconfig(Path(path)), timeouts)

    # --- connections ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connecting(self, method: str, path: str) -> Iterator[None]:
        """A connect that fails or times out: ``ApiUnavailable`` naming the call."""
        try:
            yield
        except TimeoutError as exc:
            raise ApiUnavailable(
                f"API server did not accept a connection within {self.timeouts.connect:g}s: {method} {path}: {exc}"
            ) from exc
        except OSError as exc:
            raise ApiUnavailable(
                f"API server unreachable: {method} {path}: {shorten(str(exc), 300)}; check that it runs and the address"
            ) from exc

    def _connect(self, method: str, path: str) -> http11.Connection:
        c = self.credentials
        with self._connecting(method, path):
            return http11.Connection.open(c.host, c.port, self.timeouts.connect, c.context)

    def _connect_stream(self, path: str) -> http.client.HTTPConnection:
        """A connection of ``http.client`` for a watch (its chunked stream is read line by line)."""
        c = self.credentials
        conn: http.client.HTTPConnection
        if c.context is not None:
            conn = http.client.HTTPSConnection(c.host, c.port, timeout=self.timeouts.connect, context=c.context)
        else:
            conn = http.client.HTTPConnection(c.host, c.port, timeout=self.timeouts.connect)
        try:
            with self._connecting("WATCH", path):
                conn.connect()
        except ApiUnavailable:
            conn.close()
            raise
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _pooled(self, method: str, path: str) -> http11.Connection:
        """An idle connection the server has not closed, else a new one."""
        while True:
            with self._token_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if conn.sock is not None and not _dropped(conn.sock):
                return conn
            conn.close()  # the server closed it while idle: try the next (nothing was sent: not a retry)
            with self._token_lock:
                self._open.discard(conn)
        conn = self._connect(method, path)
        with self._token_lock:
            self._open.add(conn)
        return conn

    def _release(self, conn: http11.Connection) -> None:
        """Back to the pool after its answer was read (a closed one, or one over ``IDLE_MAX``, is dropped)."""
        with self._token_lock:
            if conn.sock is not None and len(self._idle) < IDLE_MAX:
                self._idle.append(conn)
                return
            self._open.discard(conn)
        conn.close()

    def fill(self, idle: int) -> int:
        """Open connections until ``idle`` (at most ``IDLE_MAX``) wait in the pool; returns how many were opened.
        Done off the hot path (``api_facts``, while the plugin imports), so that the burst of the first
        publication (four slice writers and the lists of its two watches) does not wait for TLS handshakes."""
        opened = 0
        while True:
            with self._token_lock:
                if len(self._idle) >= min(idle, IDLE_MAX):
                    return opened
            conn = self._connect("CONNECT", "(connection pool)")
            opened += 1
            with self._token_lock:
                self._open.add(conn)
                self._idle.insert(0, conn)  # the least recently used end: warm ones are taken first

    def close(self) -> None:
        """Close every connection (a later call opens a new one)."""
        with self._token_lock:
            conns, self._open, self._idle = self._open, set(), []
        for conn in conns:
            conn.close()

    def _bearer(self) -> str | None:
        c = self.credentials
        if c.token_file is None:
            return c.token
        with self._token_lock:
            token, read_at = self._token
            if token is None or time.monotonic() - read_at > TOKEN_REREAD_S:
                token = c.token_file.read_text().strip()
                self._token = (token, time.monotonic())
            return token

    def _headers(self, method: str) -> dict[str, str]:
        self.calls[method] = self.calls.get(method, 0) + 1
        headers = {"Accept": "application/json", "User-Agent": "dra-driver-gpu"}
        token = self._bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    # --- Kube's interface ----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        headers = self._headers(method)
        data = None
        if body is not None:
            # encoded as the kubernetes client does (json.dumps' default separators): a claim's opaque parameters
            # go back byte for byte as they were read and written (docs/kubelet-plugin.md, status.devices)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        target = path + ("?" + urlencode(query) if query else "")
        conn = self._pooled(method, path)
        try:
            with _failures(conn, method, path, self.timeouts.read):
                resp = conn.exchange(method, target, headers, data, self.timeouts.read)
        except BaseException:
            with self._token_lock:
                self._open.discard(conn)  # closed by the failure: not back to the pool
            raise
        if resp.will_close:
            conn.close()
        self._release(conn)
        if not 200 <= resp.status < 300:
            raise ApiError(method, path, resp.status, resp.body.decode(errors="replace"))
        result: Obj = json.loads(resp.body) if resp.body else {}
        return result

    def watch(self, path: str, resource_version: str, timeout_s: int, **query: str) -> WatchStream:
        params = {
            **query,
            "watch": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_s),
            "allowWatchBookmarks": "true",
        }
        conn = self._connect_stream(path)  # its own: a stream holds the connection until it ends
        read_timeout = timeout_s + self.timeouts.read
        with _failures(conn, "GET", path, read_timeout):
            assert conn.sock is not None
            conn.sock.settimeout(read_timeout)
            conn.request("GET", path + "?" + urlencode(params), headers=self._headers("GET"))
            resp = conn.getresponse()
        if not 200 <= resp.status < 300:
            body = resp.read().decode(errors="replace")
            conn.close()
            raise ApiError("WATCH", path, resp.status, body)
        return HttpWatchStream(conn, resp, path, self.timeouts)


@contextlib.contextmanager
def _failures(
    conn: http11.Connection | http.client.HTTPConnection, method: str, path: str, timeout: float
) -> Iterator[None]:
    """A timeout or a broken connection while talking to the API server: the connection closed, ``ApiUnavailable``."""
    try:
        yield
    except TimeoutError as exc:
        conn.close()
        raise ApiUnavailable(f"API server did not answer within {timeout:g}s: {method} {path}") from exc
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise ApiUnavailable(f"API server connection failed: {method} {path}: {shorten(str(exc), 300)}") from exc


def _dropped(sock: socket.socket) -> bool:
    """True when an idle keep-alive socket is readable: the server closed it (or sent something unasked)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class HttpWatchStream(WatchStream):
    """``WatchStream`` over an ``http.client`` response (chunked, one JSON event per line)."""

    def __init__(
        self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse, path: str, timeouts: Timeouts
    ) -> None:
        self._conn = conn
        self._http = response
        self._path = path
        self._timeouts = timeouts
        self._closed = False

    def __iter__(self) -> Iterator[tuple[str, Obj]]:
        try:
            while True:
                line = self._http.readline()
                if not line:
                    return
                if line.strip():
                    yield self._event(line)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if not self._closed:
                if isinstance(exc, TimeoutError):
                    raise ApiUnavailable(f"API server sent nothing on the watch of {self._path} in time") from exc
                raise ApiUnavailable(f"API server connection failed: WATCH {self._path}: {exc}") from exc
        finally:
            self._conn.close()

    def close(self) -> None:
        self._closed = True
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: nothing blocks on it
                sock.shutdown(socket.SHUT_RDWR)
