"""Thin JSON access to the Kubernetes API through the official client's transport and auth.

Objects stay plain dicts as the API server sends them (so fields newer than the client's models
survive); callers convert them into their own types. Errors, translated in one place (``_unavailable``)::

    ApiError              the server answered with a non-2xx status (``status``, ``message``)
    └── ApiUnavailable    no answer: refused, reset, TLS failure or a timeout (``status`` 0)

Both are ``RecoverableError``. Every request carries a connect and a read timeout (``Timeouts``) and
the client's own urllib3 retries are switched off, so one call waits at most connect + read seconds
for its first byte and callers decide whether to retry. ``resource_path`` builds request paths from
validated, percent-quoted names.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dra_driver.errors import ConfigError, RecoverableError

if TYPE_CHECKING:  # the client costs ~0.3 s to import: loaded by the first Kube (HttpKube never loads it)
    import urllib3
    from kubernetes import client

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def shorten(text: str, limit: int = 128) -> str:
    """``text`` cut to at most ``limit`` characters (with a marker), for log lines and error messages."""
    if len(text) <= limit:
        return text
    marker = f"…(+{len(text) - limit} chars)"
    return text[: max(limit - len(marker), 0)] + marker


# --- names and paths -----------------------------------------------------------------------------

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(_LABEL)
_SUBDOMAIN_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*")
LABEL_MAX, SUBDOMAIN_MAX = 63, 253


class InvalidName(ConfigError):
    """A namespace or object name that Kubernetes would never accept (``field`` names which)."""


def dns_label_problem(value: str) -> str | None:
    """Why ``value`` is not a DNS-1123 label (a namespace, a node-local name), or None if it is one."""
    if not value:
        return "must not be empty"
    if len(value) > LABEL_MAX:
        return f"must be at most {LABEL_MAX} characters (is {len(value)})"
    if not _LABEL_RE.fullmatch(value):
        return "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit"
    return None


def dns_subdomain_problem(value: str) -> str | None:
    """Why ``value`` is not a DNS-1123 subdomain (most object names), or None if it is one."""
    if not value:
        return "must not be empty"
    if len(value) > SUBDOMAIN_MAX:
        return f"must be at most {SUBDOMAIN_MAX} characters (is {len(value)})"
    if not _SUBDOMAIN_RE.fullmatch(value):
        return (
            "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', "
            "each dot-separated part starting and ending with a letter or digit"
        )
    return None


def _checked(field: str, value: str, problem: str | None) -> str:
    if problem is not None:
        raise InvalidName(field, f"{shorten(value, 80)!r} {problem}")
    return value  # a DNS-1123 name (a-z, 0-9, '-', '.') is the same quoted: no ``quote`` on every request


def resource_path(
    group_version: str,
    plural: str,
    name: str | None = None,
    namespace: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection or object: ``/api/v1/...`` for the core group (``"v1"``), else
    ``/apis/<group>/<version>/...``. ``namespace`` must be a DNS-1123 label and ``name`` a DNS-1123
    subdomain (``InvalidName`` naming the field otherwise); every segment is percent-quoted."""
    parts = ["/api/v1"] if group_version == "v1" else [f"/apis/{quote(group_version, safe='/.')}"]
    if namespace is not None:
        parts += ["namespaces", _checked("namespace", namespace, dns_label_problem(namespace))]
    parts.append(quote(plural, safe=""))
    if name is not None:
        parts.append(_checked("name", name, dns_subdomain_problem(name)))
    if subresource is not None:
        parts.append(quote(subresource, safe=""))
    return "/".join(parts)


# --- errors --------------------------------------------------------------------------------------


class ApiError(RecoverableError):
    """The API server answered ``status`` (non-2xx); ``message`` is its Status message."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        try:
            message = json.loads(body).get("message", body)
        except (ValueError, AttributeError):
            message = body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


class ApiUnavailable(ApiError):
    """No answer from the API server (connection refused or reset, TLS failure, timeout); ``status`` is 0."""

    def __init__(self, message: str) -> None:
        RecoverableError.__init__(self, message)
        self.status = 0
        self.message = message


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection (TCP + TLS) and then for each read of the answer."""

    connect: float = 5.0
    read: float = 15.0


_TIMEOUT_RE = re.compile(r"timeout=([0-9.]+)")  # urllib3 names the timeout that expired


def _unavailable(method: str, path: str, exc: Exception, timeouts: Timeouts) -> ApiUnavailable:
    """The one translation of transport failures into ``ApiUnavailable``."""
    import urllib3

    what = f"{method} {path}"
    reason = shorten(str(exc), 300)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(exc.reason, Exception):
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return ApiUnavailable(f"API server unreachable: {what}: {reason}; check that it runs and the address")
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return ApiUnavailable(f"API server did not accept a connection within {timeouts.connect:g}s: {what}: {reason}")
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):  # also a TLS handshake that hangs (connect timeout)
        waited = _TIMEOUT_RE.search(str(exc))
        seconds = float(waited.group(1)) if waited else timeouts.read
        return ApiUnavailable(f"API server did not answer within {seconds:g}s: {what}: {reason}")
    return ApiUnavailable(f"API server connection failed: {what}: {reason}")


def _transport_errors() -> tuple[type[Exception], ...]:
    import urllib3
    from kubernetes.client.exceptions import ApiException

    return (urllib3.exceptions.HTTPError, ApiException)


def _without_retries(api_client: client.ApiClient) -> None:
    """Rebuild the client's connection pool with urllib3 retries off (they would multiply the timeouts)."""
    from kubernetes.client import rest

    if api_client.configuration.retries is False:
        return
    api_client.configuration.retries = False
    old = api_client.rest_client
    api_client.rest_client = rest.RESTClientObject(api_client.configuration)
    old.close()


# --- the client ----------------------------------------------------------------------------------


class Kube:
    """A JSON client for one cluster. Thread-safe (the underlying urllib3 pool is).

    It takes over ``api_client``'s transport: urllib3 retries are switched off on it.
    """

    def __init__(self, api_client: client.ApiClient, timeouts: Timeouts | None = None) -> None:
        _without_retries(api_client)
        self.api_client = api_client
        self.timeouts = timeouts or Timeouts()
        self.calls: dict[str, int] = {}  # method -> count, for write-counting tests and benches

    @classmethod
    def from_kubeconfig(cls, path: Path | str | None = None, timeouts: Timeouts | None = None) -> Kube:
        from kubernetes import client, config

        if path is None:
            try:
                config.load_incluster_config()
                return cls(client.ApiClient(), timeouts)
            except config.ConfigException:
                pass
        return cls(config.new_client_from_config(config_file=str(path) if path else None), timeouts)

    def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        read_timeout: float | None = None,
    ) -> Any:
        """The raw response (status checked by the caller); transport failures become ``ApiUnavailable``."""
        self.calls[method] = self.calls.get(method, 0) + 1
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = list((query or {}).items())
        _, url, hdrs, _, _ = self.api_client.param_serialize(
            method=method, resource_path=path, query_params=params, header_params=headers, auth_settings=["BearerToken"]
        )
        timeout = (self.timeouts.connect, self.timeouts.read if read_timeout is None else read_timeout)
        try:  # call_api serialises a JSON body itself
            return self.api_client.call_api(method, url, header_params=hdrs, body=body, _request_timeout=timeout)
        except _transport_errors() as exc:
            raise _unavailable(method, path, exc, self.timeouts) from exc

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        resp = self._send(method, path, body, query, content_type)
        data = self._read(method, path, resp)
        if not 200 <= resp.status < 300:
            raise ApiError(method, path, resp.status, data.decode(errors="replace"))
        return json.loads(data) if data else {}

    def _read(self, method: str, path: str, resp: Any) -> bytes:
        """The whole body; a transport failure while reading is ``ApiUnavailable`` like one while sending."""
        try:
            data: bytes = resp.read()
        except _transport_errors() as exc:
            raise _unavailable(method, path, exc, self.timeouts) from exc
        return data

    def get(self, path: str) -> Obj | None:
        try:
            return self.request("GET", path)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    def list_versioned(self, path: str, **query: str) -> tuple[list[Obj], str]:
        """All items of a collection (follows ``continue`` tokens) and the list's resourceVersion."""
        items: list[Obj] = []
        params = dict(query)
        while True:
            page = self.request("GET", path, query=params)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion", ""))
            params["continue"] = meta["continue"]

    def list(self, path: str, **query: str) -> list[Obj]:
        """All items of a collection (follows ``continue`` tokens)."""
        return self.list_versioned(path, **query)[0]

    def watch(self, path: str, resource_version: str, timeout_s: int, **query: str) -> WatchStream:
        """Watch a collection from ``resource_version``; the server ends the stream after ``timeout_s``.

        Each read may wait ``timeout_s`` plus the read timeout, so a silent server is noticed."""
        params = {
            **query,
            "watch": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_s),
            "allowWatchBookmarks": "true",
        }
        resp = self._send("GET", path, query=params, read_timeout=timeout_s + self.timeouts.read)
        if not 200 <= resp.status < 300:
            raise ApiError("WATCH", path, resp.status, self._read("WATCH", path, resp).decode(errors="replace"))
        return WatchStream(resp.response, path, self.timeouts)

    def create(self, path: str, body: Obj, **query: str) -> Obj:
        return self.request("POST", path, body, query=query or None)

    def replace(self, path: str, body: Obj) -> Obj:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH, **query: str) -> Obj:
        return self.request("PATCH", path, body, query=query or None, content_type=content_type)

    def delete(self, path: str, **query: str) -> bool:
        """Delete; False if it was already gone."""
        try:
            self.request("DELETE", path, query=query or None)
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return True

    def writes(self) -> int:
        return sum(n for method, n in self.calls.items() if method != "GET")


class WatchStream:
    """One watch request's events as ``(type, object)``; ``close()`` from another thread ends it promptly.

    An ``ERROR`` event becomes ``ApiError`` with its Status code (410: the resourceVersion is too old, list
    again); transport failures become ``ApiUnavailable``. The stream ends when the server closes it.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse, path: str, timeouts: Timeouts) -> None:
        self._response = response
        self._path = path
        self._timeouts = timeouts
        self._closed = False

    def __iter__(self) -> Iterator[tuple[str, Obj]]:
        buffer = b""
        try:
            for chunk in self._response.stream(decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield self._event(line)
        except _transport_errors() as exc:
            if not self._closed:
                raise _unavailable("WATCH", self._path, exc, self._timeouts) from exc
        finally:
            self._response.close()  # never reuse a connection whose stream may be half read
            self._response.release_conn()

    def _event(self, line: bytes) -> tuple[str, Obj]:
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise ApiUnavailable(f"API server sent an unreadable watch event on {self._path}: {exc}") from exc
        kind, obj = str(event.get("type", "")), event.get("object") or {}
        if kind == "ERROR":
            raise ApiError("WATCH", self._path, int(obj.get("code") or 500), json.dumps(obj))
        return kind, obj

    def close(self) -> None:
        """Unblock a reader in another thread (its loop then ends quietly) and drop the connection."""
        self._closed = True
        with contextlib.suppress(ValueError, RuntimeError, OSError):  # already released: nothing blocks on it
            self._response.shutdown()
