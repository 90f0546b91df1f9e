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


@pytest.mark.parametrize(
    ("text", "why"),
    [("a: &a [*a]\n", "alias *a is inside the node it refers to"),
     ("\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
                + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]),
      "aliases expand the document by more than 100000 nodes"),
     ("kind: X\n---\nspec: " + "[" * 100_000, "nested too deeply"),
     ("spec:\n  count: " + "9" * 5000 + "\n", "<document 0>.spec.count: a number of 5000 characters is out of range"),
     ("#" * (3 * 1024 * 1024 + 1), "is too large")],
    ids=["recursive alias", "billion laughs", "deep", "long integer", "over 3 MiB"],
)  # fmt: skip
def test_yaml_beyond_the_limits_is_unreadable_naming_why(text: str, why: str) -> None:
    with pytest.raises(Unreadable) as e:
        parse_documents(text, "bomb.yaml")
    assert str(e.value).startswith("bomb.yaml: ") and why in str(e.value)


def test_json_beyond_the_limits_is_unreadable_naming_the_field() -> None:
    text = json.dumps(CLAIM).replace('"c"', '"c", "generation": ' + "7" * 5000, 1)
    with pytest.raises(Unreadable, match=r"c\.json: metadata\.generation: .* is out of range"):
        parse_documents(text.replace("{", "{\t", 1), "c.json")  # a tab: YAML refuses it, JSON is tried


def test_every_duplicate_key_in_json_is_a_finding() -> None:
    text = '{"apiVersion": "v1",\t"kind": "X", "kind": "Y", "metadata": {"name": "a", "name": "b"}}'
    [doc] = parse_documents(text, "c.json")
    assert [i.field for i in doc.issues] == ["kind", "metadata.name"] and doc.body["kind"] == "Y"


def test_yaml_anchors_and_merge_keys_keep_their_lines_and_find_duplicates() -> None:
    text = "kind: X\nbase: &b {x: 1}\nspec:\n  <<: *b\n  y: 2\n  y: 3\n"
    [doc] = parse_documents(text, "f.yaml")
    assert doc.body["spec"] == {"x": 1, "y": 3}
    assert [(i.field, doc.line_of(i.field)) for i in doc.issues] == [("spec.y", 5)]  # the first one's line


def test_an_impossible_date_is_unreadable_not_a_crash() -> None:
    with pytest.raises(Unreadable, match=r"'2020-13-45' is not a valid tag:yaml\.org,2002:timestamp"):
        parse_documents("kind: X\nmetadata: {creationTimestamp: 2020-13-45}\n", "f.yaml")
