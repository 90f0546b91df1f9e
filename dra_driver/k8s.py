"""Thin JSON access to the Kubernetes API through the official client's transport and auth.

Objects stay plain dicts as the API server sends them (so fields newer than the client's models
survive); callers convert them into their own types. Non-2xx answers become ``ApiError``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubernetes import client, config

from dra_driver.errors import RecoverableError

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class ApiError(RecoverableError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        try:
            message = json.loads(body).get("message", body)
        except ValueError:
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


class Kube:
    """A JSON client for one cluster. Thread-safe (the underlying urllib3 pool is)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.calls: dict[str, int] = {}  # method -> count, for write-counting tests and benches

    @classmethod
    def from_kubeconfig(cls, path: Path | str | None = None) -> Kube:
        if path is None:
            try:
                config.load_incluster_config()
                return cls(client.ApiClient())
            except config.ConfigException:
                pass
        return cls(config.new_client_from_config(config_file=str(path) if path else None))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        self.calls[method] = self.calls.get(method, 0) + 1
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = list((query or {}).items())
        _, url, hdrs, _, _ = self.api_client.param_serialize(
            method=method, resource_path=path, query_params=params, header_params=headers, auth_settings=["BearerToken"]
        )
        resp = self.api_client.call_api(method, url, header_params=hdrs, body=body)  # serialises JSON itself
        data = resp.read()
        if not 200 <= resp.status < 300:
            raise ApiError(method, path, resp.status, data.decode(errors="replace"))
        return json.loads(data) if data else {}

    def get(self, path: str) -> Obj | None:
        try:
            return self.request("GET", path)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    def list(self, path: str, **query: str) -> list[Obj]:
        """All items of a collection (follows ``continue`` tokens)."""
        items: list[Obj] = []
        params = dict(query)
        while True:
            page = self.request("GET", path, query=params)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params["continue"] = token

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
