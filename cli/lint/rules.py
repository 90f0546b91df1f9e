"""Rules that span fields, as the API server's validation applies them (k8s.io/kubernetes 1.37
``pkg/apis/resource/validation``): one-of fields, names, references between requests, constraints and
configs, allocation mode and count. Pure; input is a ``Manifest`` whose structure may still be wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from cli.lint.findings import Issue
from cli.lint.objects import EXACT_FIELDS, Alternative, Manifest

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_RESULTS = 32  # devices allocated to one claim (AllocationResultsMaxSize)
REF_MESSAGE = "must be the name of a request in the claim or the name of a request and a subrequest separated by '/'"


def _issue(field: str, message: str) -> Issue:
    return Issue("schema", field, message)


def dns_label_issue(value: str, field: str) -> Issue | None:
    if len(value) > 63 or not DNS_LABEL.fullmatch(value):
        return _issue(field, f"{value!r} is not a DNS label: lower-case letters, digits and '-', at most 63 characters")
    return None


def dns_subdomain_issue(value: str, field: str) -> Issue | None:
    if len(value) > 253 or not DNS_SUBDOMAIN.fullmatch(value):
        return _issue(
            field, f"{value!r} is not a DNS subdomain: lower-case letters, digits, '-' and '.', at most 253 characters"
        )
    return None


def check(m: Manifest) -> list[Issue]:
    issues = list(_metadata(m))
    if m.kind != "DeviceClass":
        issues += _claim(m)
    return issues


def _metadata(m: Manifest) -> Iterator[Issue]:
    meta = m.body.get("metadata")
    if not isinstance(meta, Mapping):
        return
    name, generate = meta.get("name"), meta.get("generateName")
    if m.kind == "DeviceClass" and not name:
        yield _issue("metadata.name", "required: a DeviceClass needs a name")
    elif not name and not generate:
        yield _issue("metadata.name", "required: give metadata.name (or metadata.generateName)")
    if isinstance(name, str) and name and (issue := dns_subdomain_issue(name, "metadata.name")):
        yield issue


def _claim(m: Manifest) -> list[Issue]:
    raw = m.devices.get("requests")
    issues: list[Issue] = []
    seen: set[str] = set()
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        path = f"{m.claim_path}.devices.requests[{i}]"
        name = item["name"]
        if name in seen:
            issues.append(_issue(f"{path}.name", f"duplicate request name {name!r}; request names must be unique"))
        seen.add(name)
        if issue := dns_label_issue(name, f"{path}.name"):
            issues.append(issue)
        issues += _request_shape(item, path, m.version)
    names = _reference_names(m)
    issues += _constraints(m.devices.get("constraints"), f"{m.claim_path}.devices.constraints", names)
    issues += _config_refs(m.devices.get("config"), f"{m.claim_path}.devices.config", names)
    for request in m.requests:
        subs: set[str] = set()
        for alt in request.alternatives:
            if request.first_available:
                sub = alt.name.split("/", 1)[1]
                if sub in subs:
                    issues.append(_issue(f"{alt.path}.name", f"duplicate subrequest name {sub!r}"))
                subs.add(sub)
                if issue := dns_label_issue(sub, f"{alt.path}.name"):
                    issues.append(issue)
            issues += _alternative(alt)
    return issues


def _request_shape(raw: Mapping[str, Any], path: str, version: str) -> list[Issue]:
    has_first = bool(raw.get("firstAvailable"))
    if version == "v1beta1":
        exact = [k for k in EXACT_FIELDS if raw.get(k) is not None]
        if has_first and exact:
            return [
                _issue(
                    path,
                    f"{', '.join(exact)} cannot be set together with firstAvailable; move them into the subrequests",
                )
            ]
        if not has_first and raw.get("deviceClassName") is None:
            return [_issue(f"{path}.deviceClassName", "required unless firstAvailable is set")]
        return []
    has_exactly = raw.get("exactly") is not None
    if has_first and has_exactly:
        return [_issue(path, "exactly one of `exactly` or `firstAvailable` is required, but both are set")]
    if not has_first and not has_exactly:
        misplaced = [k for k in EXACT_FIELDS if k in raw]
        hint = f" ({', '.join(misplaced)} belong inside `exactly` in resource.k8s.io/{version})" if misplaced else ""
        return [_issue(path, f"exactly one of `exactly` or `firstAvailable` is required{hint}")]
    return []


def _alternative(alt: Alternative) -> Iterator[Issue]:
    body = alt.body
    device_class = body.get("deviceClassName")
    if isinstance(device_class, str) and (issue := dns_subdomain_issue(device_class, f"{alt.path}.deviceClassName")):
        yield issue
    mode, count = body.get("allocationMode") or "ExactCount", body.get("count")
    if mode == "All" and count is not None:
        yield _issue(f"{alt.path}.count", "must not be specified when allocationMode is 'All'")
    if mode == "ExactCount" and isinstance(count, int) and not isinstance(count, bool):
        if count <= 0:
            yield _issue(f"{alt.path}.count", f"must be greater than zero, got {count}")
        elif count > MAX_RESULTS:
            message = f"{count} devices can never be allocated: a claim holds at most {MAX_RESULTS} devices"
            yield Issue("feasibility", f"{alt.path}.count", message)
    tolerations = body.get("tolerations")
    for i, t in enumerate(tolerations if isinstance(tolerations, list) else []):
        if isinstance(t, Mapping) and t.get("operator") == "Exists" and t.get("value"):
            yield _issue(f"{alt.path}.tolerations[{i}].value", "must be empty for operator `Exists`")


def _reference_names(m: Manifest) -> set[str]:
    names = set()
    for request in m.requests:
        names.add(request.name)
        if request.first_available:
            names.update(alt.name for alt in request.alternatives)
    return names


def _refs(raw: Any, path: str, names: set[str]) -> Iterator[Issue]:
    if not isinstance(raw, list):
        return
    for i, ref in enumerate(raw):
        if isinstance(ref, str) and ref not in names:
            valid = f"; requests: {', '.join(sorted(names))}" if names else ""
            yield _issue(f"{path}[{i}]", f"{ref!r} {REF_MESSAGE}{valid}")


def _constraints(raw: Any, path: str, names: set[str]) -> Iterator[Issue]:
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, Mapping):
            continue
        at = f"{path}[{i}]"
        yield from _refs(item.get("requests"), f"{at}.requests", names)
        given = [k for k in ("matchAttribute", "distinctAttribute") if item.get(k) is not None]
        if len(given) != 1:
            both = ", but both are set" if given else ""
            yield _issue(at, f"exactly one of `matchAttribute` or `distinctAttribute` is required{both}")
        for key in given:
            value = item[key]
            if isinstance(value, str) and "/" not in value:
                yield _issue(
                    f"{at}.{key}",
                    f"{value!r} is not fully qualified: write domain/name, e.g. gpu.dra-driver.dev/{value}",
                )


def _config_refs(raw: Any, path: str, names: set[str]) -> Iterator[Issue]:
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        if isinstance(item, Mapping):
            yield from _refs(item.get("requests"), f"{path}[{i}].requests", names)
