"""Properties of name checks and paths: what Kubernetes accepts passes, anything else is refused by field."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dra_driver.k8s import InvalidName, resource_path, shorten
from dra_driver.kubeletplugin.protocol import ClaimRef
from dra_driver.kubeletplugin.validation import claim_problem, split_claims

LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
SUBDOMAIN = st.lists(LABEL, min_size=1, max_size=3).map(".".join)
UID = st.from_regex(r"[0-9a-fA-F][0-9a-fA-F-]{0,127}", fullmatch=True)
FAST = settings(database=None, deadline=None, max_examples=100)


@FAST
@given(namespace=LABEL, name=SUBDOMAIN, uid=UID)
def test_every_reference_kubernetes_could_create_is_accepted(namespace: str, name: str, uid: str) -> None:
    assert claim_problem(ClaimRef(namespace, uid, name)) is None


@FAST
@given(
    namespace=LABEL,
    bad=st.text(min_size=1).filter(lambda s: any(c not in "abcdefghijklmnopqrstuvwxyz0123456789.-" for c in s)),
)
def test_a_name_with_any_character_kubernetes_forbids_is_refused_by_field(namespace: str, bad: str) -> None:
    problem = claim_problem(ClaimRef(namespace, "abc-123", bad))
    assert problem is not None and problem.startswith("invalid claim name ")


@FAST
@given(namespace=st.text(max_size=5000), name=st.text(max_size=5000), uid=st.text(max_size=5000))
def test_a_refusal_stays_short_whatever_was_sent(namespace: str, name: str, uid: str) -> None:
    problem = claim_problem(ClaimRef(namespace, uid, name))
    assert problem is None or len(problem) < 300


@settings(database=None, deadline=None, max_examples=40)
@given(
    claims=st.lists(
        st.builds(ClaimRef, st.one_of(LABEL, st.text()), st.one_of(UID, st.text()), st.one_of(SUBDOMAIN, st.text())),
        max_size=8,
    )
)
def test_split_passes_exactly_the_valid_references(claims: list[ClaimRef]) -> None:
    valid, refused = split_claims(claims)
    assert valid == [c for c in claims if claim_problem(c) is None]
    assert set(refused) == {c.uid for c in claims if claim_problem(c) is not None}


@FAST
@given(namespace=st.text(max_size=80), name=st.text(max_size=300))
def test_a_path_either_names_exactly_one_object_or_is_refused(namespace: str, name: str) -> None:
    try:
        path = resource_path("resource.k8s.io/v1", "resourceclaims", name, namespace)
    except InvalidName as exc:
        assert exc.field in ("namespace", "name")
        return
    assert path == f"/apis/resource.k8s.io/v1/namespaces/{namespace}/resourceclaims/{name}"
    assert not {"?", "#", "%", " "} & set(path)


def test_the_reported_escape_is_refused_naming_the_namespace() -> None:
    with pytest.raises(InvalidName) as exc:
        resource_path("resource.k8s.io/v1", "resourceclaims", "x", "fz/resourceclaims/real#")
    assert exc.value.field == "namespace"
    assert "DNS-1123 label" in str(exc.value)


def test_core_group_paths_and_subresources() -> None:
    assert resource_path("v1", "nodes", "node-a.example") == "/api/v1/nodes/node-a.example"
    assert resource_path("v1", "pods", "p", "ns", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert resource_path("resource.k8s.io/v1", "resourceslices") == "/apis/resource.k8s.io/v1/resourceslices"


@FAST
@given(text=st.text(max_size=1000), limit=st.integers(min_value=24, max_value=300))
def test_shorten_never_exceeds_its_limit_and_keeps_short_text(text: str, limit: int) -> None:
    out = shorten(text, limit)
    assert len(out) <= limit
    assert (out == text) == (len(text) <= limit)
