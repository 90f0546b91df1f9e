"""AdmissionReview (``admission.k8s.io/v1``) in, AdmissionReview out: this driver's opaque configs in
ResourceClaims, ResourceClaimTemplates (and DeviceClasses, if a rule sends them) are decoded with the shared
validator; other drivers' configs and other objects are allowed. Pure: bytes in, status and document out.

An UPDATE that leaves the configs as they were is allowed. A denial's ``status.message`` names each bad
field, e.g.
``spec.devices.config[0].opaque.parameters.sharing.strategy: unknown strategy 'Foo'; valid: TimeSlicing, MPS``.
"""

from __future__ import annotations

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
REVIEW_DEPTH = strict.MAX_DEPTH + 2  # the review and its request hold the object


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


def _parse(body: bytes) -> tuple[Mapping[str, Any], list[str]]:
    """The review, and the paths (in the object) of its duplicate keys: the last value wins meanwhile.

    The body is parsed within the limits of ``api.config.strict`` (3 MiB, integers of 64 digits), with room
    for the two levels that ``request.object`` adds to an object's own 64.
    """
    try:
        parsed, duplicates = strict.parse_json(body, "", max_depth=REVIEW_DEPTH)
        review = strict.want_mapping(parsed, "review")
    except ConfigError as e:
        raise BadReview(f"not an AdmissionReview: {e}") from e
    outside = [d for d in duplicates if not d.startswith(OBJECT)]
    if outside:
        raise BadReview(f"not an AdmissionReview: {outside[0]}: duplicate key; each key may appear only once")
    return review, [d.removeprefix(OBJECT) for d in duplicates]


def _duplicate_errors(fields: list[str], obj: Mapping[str, Any], path: str, driver: str) -> list[str]:
    """Duplicate keys inside this driver's config entries (only opaque parameters keep them)."""
    configs = _at(obj, path)
    out = []
    for field in fields:
        match = re.match(rf"{re.escape(path)}\[(\d+)\]\.", field)
        if match is None or not isinstance(configs, list) or int(match.group(1)) >= len(configs):
            continue
        if _at(configs[int(match.group(1))], "opaque.driver") == driver:
            out.append(f"{field}: duplicate key; each key may appear only once in an object")
    return out


def decide(body: bytes, driver: str) -> Decision:
    """The decision on one AdmissionReview; raises ``BadReview`` for a body that is not one."""
    review, duplicates = _parse(body)
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
    errors = _duplicate_errors(duplicates, obj, path, driver) + object_errors(kind_name, obj, driver)
    if errors:
        return Decision(uid, False, "; ".join(errors), what)
    return Decision(uid, True, what=what)
