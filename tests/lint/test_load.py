"""Reading manifests: YAML streams, JSON, List objects, duplicate keys, files that cannot be read."""

from __future__ import annotations

import json

import pytest

from cli.lint import Unreadable, parse_documents
from tests.lint.helpers import lint

CLAIM = {
    "apiVersion": "resource.k8s.io/v1",
    "kind": "ResourceClaim",
    "metadata": {"name": "c"},
    "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.dra-driver.dev"}}]}},
}


def test_multi_document_yaml_skips_empty_documents() -> None:
    docs = parse_documents("---\n" + json.dumps(CLAIM) + "\n---\n---\nkind: X\napiVersion: v1\n", "f.yaml")
    assert [d.index for d in docs] == [0, 1] and docs[0].name == "c"


def test_a_list_is_expanded_with_paths_relative_to_each_item() -> None:
    bad = json.loads(json.dumps(CLAIM))
    bad["spec"]["devices"]["requests"][0]["exactly"]["coutn"] = 1
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [CLAIM, bad]}, indent=1)
    [finding] = lint(text)
    assert finding.document == 1 and finding.field == "spec.devices.requests[0].exactly.coutn"
    assert finding.line is not None and '"coutn"' in text.splitlines()[finding.line - 1]


def test_json_with_tabs_is_read_by_the_json_parser() -> None:
    text = json.dumps(CLAIM, indent="\t")
    [doc] = parse_documents(text, "claim.json")
    assert doc.body == CLAIM


def test_duplicate_key_in_json_is_a_finding_not_a_crash() -> None:
    text = '{"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",\t"metadata": {"name": "a", "name": "b"}, "spec": {}}'
    [doc] = parse_documents(text, "c.json")
    assert [(i.field, i.check) for i in doc.issues] == [("metadata.name", "schema")]


def test_invalid_yaml_is_unreadable() -> None:
    with pytest.raises(Unreadable, match="not valid YAML or JSON"):
        parse_documents("a: [1, 2\n", "broken.yaml")


def test_a_scalar_document_is_reported() -> None:
    [finding] = lint("just a string\n")
    assert "not a Kubernetes object" in finding.message
