"""REST paths: namespaces and names validated (the field named), the path built without re-quoting them."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dra_driver.k8s import InvalidName, dns_subdomain_problem, resource_path


def test_core_and_group_paths() -> None:
    assert resource_path("v1", "pods", "p-0", "ns") == "/api/v1/namespaces/ns/pods/p-0"
    assert resource_path("resource.k8s.io/v1", "resourceclaims", "c.1", "default", "status") == (
        "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/c.1/status"
    )
    assert resource_path("resource.k8s.io/v1", "resourceslices") == "/apis/resource.k8s.io/v1/resourceslices"


@pytest.mark.parametrize(
    ("name", "namespace", "field"),
    [
        ("a/b", "ns", "name"),
        ("a%2Fb", "ns", "name"),
        ("A", "ns", "name"),
        ("a", "a.b", "namespace"),
        ("a", "", "namespace"),
    ],
)
def test_invalid_names_are_refused_naming_the_field(name: str, namespace: str, field: str) -> None:
    with pytest.raises(InvalidName) as e:
        resource_path("v1", "pods", name, namespace)
    assert e.value.field == field


@given(st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,40}[a-z0-9])?", fullmatch=True))
def test_a_valid_name_is_its_own_quoting(name: str) -> None:
    if dns_subdomain_problem(name) is None:
        assert resource_path("v1", "pods", name, "ns").endswith("/pods/" + quote(name, safe=""))
