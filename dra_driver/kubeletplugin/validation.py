"""What the plugin accepts from the kubelet, checked at the gRPC edge before any handler sees it. Pure.

A claim reference is valid when its namespace is a DNS-1123 label, its name a DNS-1123 subdomain and its
UID 1..128 characters of hex digits and '-', starting with a hex digit (what the API server generates). An invalid claim is answered
with a per-claim error and never reaches the handler, so it is never looked up, checkpointed or logged
at full length.
"""

from __future__ import annotations

import re

from dra_driver.k8s import dns_label_problem, dns_subdomain_problem, shorten
from dra_driver.kubeletplugin.protocol import ClaimRef

MAX_CLAIMS_PER_REQUEST = 256
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # gRPC max_receive_message_length of the DRA socket
UID_MAX = 128
_UID_RE = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]*")


def uid_problem(uid: str) -> str | None:
    """Why ``uid`` is not a claim UID, or None."""
    if not uid:
        return "must not be empty"
    if len(uid) > UID_MAX:
        return f"must be at most {UID_MAX} characters (is {len(uid)})"
    if not _UID_RE.fullmatch(uid):
        return "must consist of hexadecimal digits and '-', starting with a hex digit (a Kubernetes UID)"
    return None


def claim_problem(ref: ClaimRef) -> str | None:
    """Why the kubelet cannot have meant ``ref`` (the first bad field, with what is valid), or None."""
    checks = (
        ("namespace", ref.namespace, dns_label_problem(ref.namespace)),
        ("name", ref.name, dns_subdomain_problem(ref.name)),
        ("uid", ref.uid, uid_problem(ref.uid)),
    )
    for field, value, problem in checks:
        if problem is not None:
            return f"invalid claim {field} {shorten(value, 80)!r}: {problem}"
    return None


def split_claims(claims: list[ClaimRef]) -> tuple[list[ClaimRef], dict[str, str]]:
    """The valid claims, and an error message for each invalid one by the UID it was sent with."""
    valid: list[ClaimRef] = []
    refused: dict[str, str] = {}
    for ref in claims:
        problem = claim_problem(ref)
        if problem is None:
            valid.append(ref)
        else:
            refused[ref.uid] = problem
    return valid, refused


def too_many_claims(count: int) -> str | None:
    """The error for a request with more than ``MAX_CLAIMS_PER_REQUEST`` claims, or None."""
    if count > MAX_CLAIMS_PER_REQUEST:
        return f"the request has {count} claims; at most {MAX_CLAIMS_PER_REQUEST} are accepted per call"
    return None
