"""A linted document as the checks see it: kind, version and its requests in one shape whatever the API
version, each part with the field path it came from. Pure.

Built defensively: malformed parts (already reported by the schema check) are left out, never raised on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cli.lint.load import Document
from cli.lint.shapes import GROUP, KINDS, VERSIONS

Obj = Mapping[str, Any]
EXACT_FIELDS = ("deviceClassName", "selectors", "allocationMode", "count", "adminAccess", "tolerations", "capacity")


@dataclass(frozen=True)
class Alternative:
    """One way to satisfy a request: ``exactly``, or one ``firstAvailable`` entry."""

    name: str  # "gpu" or "gpu/small", as in allocation results and config ``requests``
    path: str  # the object holding deviceClassName, selectors, count ...
    body: Obj  # v1 ExactDeviceRequest / DeviceSubRequest fields

    @property
    def device_class(self) -> str:
        value = self.body.get("deviceClassName")
        return value if isinstance(value, str) else ""

    @property
    def selectors(self) -> list[tuple[str, str]]:
        """(field path of the expression, expression) for each well-formed CEL selector."""
        return _selectors(self.body.get("selectors"), f"{self.path}.selectors")


@dataclass(frozen=True)
class Request:
    name: str
    path: str
    alternatives: tuple[Alternative, ...]
    first_available: bool
    body: Obj  # as written

    def to_v1(self) -> dict[str, Any]:
        if self.first_available:
            return {"name": self.name, "firstAvailable": [dict(a.body) for a in self.alternatives]}
        exact = self.alternatives[0].body if self.alternatives else {}
        return {"name": self.name, "exactly": dict(exact)}


@dataclass(frozen=True)
class Manifest:
    document: Document
    kind: str  # DeviceClass | ResourceClaim | ResourceClaimTemplate
    version: str  # v1 | v1beta2 | v1beta1

    @property
    def body(self) -> Obj:
        body: Obj = self.document.body
        return body

    @property
    def name(self) -> str:
        return self.document.name

    @property
    def claim_path(self) -> str:
        """Where the ResourceClaimSpec is (claims and templates)."""
        return "spec.spec" if self.kind == "ResourceClaimTemplate" else "spec"

    @property
    def claim_spec(self) -> Obj:
        node: Any = self.body
        for key in self.claim_path.split("."):
            node = node.get(key) if isinstance(node, Mapping) else None
        return node if isinstance(node, Mapping) else {}

    @property
    def devices(self) -> Obj:
        devices = self.claim_spec.get("devices")
        return devices if isinstance(devices, Mapping) else {}

    @property
    def config_path(self) -> str:
        return "spec.config" if self.kind == "DeviceClass" else f"{self.claim_path}.devices.config"

    @property
    def configs(self) -> Any:
        if self.kind == "DeviceClass":
            spec = self.body.get("spec")
            return spec.get("config") if isinstance(spec, Mapping) else None
        return self.devices.get("config")

    @property
    def class_selectors(self) -> list[tuple[str, str]]:
        spec = self.body.get("spec")
        return _selectors(spec.get("selectors") if isinstance(spec, Mapping) else None, "spec.selectors")

    @cached_property
    def requests(self) -> tuple[Request, ...]:
        if self.kind == "DeviceClass":
            return ()
        raw = self.devices.get("requests")
        base = f"{self.claim_path}.devices.requests"
        out = []
        for i, item in enumerate(raw if isinstance(raw, list) else []):
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                out.append(_request(item, f"{base}[{i}]", self.version))
        return tuple(out)

    def claim_v1(self, only: Request | None = None) -> dict[str, Any]:
        """This claim as a v1 ResourceClaim for the allocator, or a claim of just one request (no constraints)."""
        requests = [only] if only is not None else list(self.requests)
        devices: dict[str, Any] = {"requests": [r.to_v1() for r in requests]}
        if only is None and isinstance(self.devices.get("constraints"), list):
            devices["constraints"] = self.devices["constraints"]
        meta = self.body.get("metadata")
        namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
        metadata = {"name": self.name or "unnamed", "namespace": namespace if isinstance(namespace, str) else "default"}
        return {"metadata": metadata, "spec": {"devices": devices}}


def _selectors(raw: Any, path: str) -> list[tuple[str, str]]:
    out = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        cel = item.get("cel") if isinstance(item, Mapping) else None
        expression = cel.get("expression") if isinstance(cel, Mapping) else None
        if isinstance(expression, str):
            out.append((f"{path}[{i}].cel.expression", expression))
    return out


def _request(raw: Obj, path: str, version: str) -> Request:
    name = str(raw["name"])
    subs = raw.get("firstAvailable")
    if isinstance(subs, list) and subs:
        alternatives = tuple(
            Alternative(f"{name}/{sub['name']}", f"{path}.firstAvailable[{i}]", sub)
            for i, sub in enumerate(subs)
            if isinstance(sub, Mapping) and isinstance(sub.get("name"), str)
        )
        return Request(name, path, alternatives, True, raw)
    if version == "v1beta1":
        exact = {k: raw[k] for k in EXACT_FIELDS if k in raw}
        return Request(name, path, (Alternative(name, path, exact),) if exact else (), False, raw)
    exactly = raw.get("exactly")
    if isinstance(exactly, Mapping):
        return Request(name, path, (Alternative(name, f"{path}.exactly", exactly),), False, raw)
    return Request(name, path, (), False, raw)


def api_version_of(body: Obj) -> tuple[str, str] | None:
    """(group, version) from ``apiVersion``."""
    api_version = body.get("apiVersion")
    if not isinstance(api_version, str) or not api_version:
        return None
    group, _, version = api_version.rpartition("/")
    return group, version


def manifest(document: Document) -> Manifest | str | None:
    """The manifest view of a document, a message if it is ours but unusable, ``None`` if it is not ours."""
    body = document.body
    if not isinstance(body, Mapping):
        return "not a Kubernetes object: expected a mapping with apiVersion and kind"
    gv, kind = api_version_of(body), body.get("kind")
    if gv is None or not isinstance(kind, str) or not kind:
        return "not a Kubernetes object: apiVersion and kind are required"
    group, version = gv
    if group != GROUP or kind not in KINDS:
        return None
    if version not in VERSIONS:
        return f"apiVersion {group}/{version} is not linted; use {', '.join(f'{GROUP}/{v}' for v in VERSIONS)}"
    return Manifest(document, kind, version)
