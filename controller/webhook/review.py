"""AdmissionReview (``admission.k8s.io/v1``) in, AdmissionReview out: this driver's opaque configs in
ResourceClaims, ResourceClaimTemplates (and DeviceClasses, if a rule sends them) are decoded with the shared
validator; other drivers' configs and other objects are allowed. Pure: bytes in, status and document out.

An UPDATE that leaves the configs as they were is allowed. A denial's ``status.message`` names each bad
field, e.g.
``spec.devices.config[0].opaque.parameters.sharing.strategy: unknown strategy 'Foo'; valid: TimeSlicing, MPS``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.config import strict
from api.config.entries import config_errors
from api.errors import ConfigError

API_VERSION = "admission.k8s.io/v1"
GROUP = "resource.k8s.io"
CONFIG_FIELDS = {  # kind -> where its config list is, the same in v1, v1beta2 and v1beta1
    "ResourceClaim": "spec.devices.config",
    "ResourceClaimTemplate": "spec.spec.devices.config",
    "DeviceClass": "spec.config",
}
OBJECT = "request.object."


class BadReview(Exception):
    """The body is not an AdmissionReview we can answer (HTTP 400)."""


@dataclass(frozen=True)
class Decision:
    uid: str
    allowed: bool
    message: str = ""
    what: str = ""  # for logs: "CREATE ResourceClaim ns/name"

    def review(self) -> dict[str, Any]:
        response: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if not self.allowed:
            response["status"] = {"code": 422, "reason": "Invalid", "message": self.message}
        return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def _at(obj: Any, path: str) -> Any:
    for key in path.split("."):
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def object_errors(kind: str, obj: Mapping[str, Any], driver: str) -> list[str]:
    """``field: message`` for each of this driver's config entries in ``obj`` that would be refused."""
    path = CONFIG_FIELDS.get(kind)
    if path is None:
        return []
    return [str(e) for e in config_errors(_at(obj, path), driver, path)]


def _parse(body: bytes) -> tuple[Mapping[str, Any], str | None]:
    """The review, and the path (in the object) of a duplicate key, if any: the last value wins meanwhile."""
    try:
        return strict.want_mapping(strict.loads_json(body, ""), "review"), None
    except ConfigError as e:
        if "duplicate key" not in str(e):
            raise BadReview(f"not an AdmissionReview: {e}") from e
        parsed = json.loads(body)
        if not isinstance(parsed, Mapping) or not e.field.startswith(OBJECT):
            raise BadReview(f"not an AdmissionReview: {e}") from e
        return parsed, e.field.removeprefix(OBJECT)


def _duplicate_errors(field: str | None, obj: Mapping[str, Any], path: str, driver: str) -> list[str]:
    """A duplicate key inside one of this driver's config entries (only opaque parameters keep them)."""
    match = re.match(rf"{re.escape(path)}\[(\d+)\]\.", field or "")
    configs = _at(obj, path)
    if match is None or not isinstance(configs, list) or int(match.group(1)) >= len(configs):
        return []
    if _at(configs[int(match.group(1))], "opaque.driver") != driver:
        return []
    return [f"{field}: duplicate key; each key may appear only once in an object"]


def decide(body: bytes, driver: str) -> Decision:
    """The decision on one AdmissionReview; raises ``BadReview`` for a body that is not one."""
    review, duplicate = _parse(body)
    if review.get("apiVersion") != API_VERSION or review.get("kind") != "AdmissionReview":
        raise BadReview(f"expected apiVersion {API_VERSION}, kind AdmissionReview")
    request = review.get("request")
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str):
        raise BadReview("the AdmissionReview has no request.uid")
    uid = request["uid"]
    raw_kind = request.get("kind")
    kind: Mapping[str, Any] = raw_kind if isinstance(raw_kind, Mapping) else {}
    group, kind_name = kind.get("group"), str(kind.get("kind") or "")
    obj = request.get("object")
    name = f"{request.get('namespace') or ''}/{request.get('name') or _at(obj, 'metadata.name') or ''}".lstrip("/")
    what = f"{request.get('operation')} {kind_name} {name} ({kind.get('version')})"
    if group != GROUP or kind_name not in CONFIG_FIELDS or request.get("operation") not in ("CREATE", "UPDATE"):
        return Decision(uid, True, what=what)
    if not isinstance(obj, Mapping):
        return Decision(uid, False, "request.object: missing; nothing to validate", what)
    path = CONFIG_FIELDS[kind_name]
    if request.get("operation") == "UPDATE" and _at(request.get("oldObject"), path) == _at(obj, path):
        # Configs are immutable in claims and templates: an update (finalizers, labels) must never be refused
        # for a config that got in before the webhook did, or the object could not even be deleted.
        return Decision(uid, True, what=what)
    errors = _duplicate_errors(duplicate, obj, path, driver) + object_errors(kind_name, obj, driver)
    if errors:
        return Decision(uid, False, "; ".join(errors), what)
    return Decision(uid, True, what=what)
