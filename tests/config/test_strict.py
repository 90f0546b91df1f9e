"""Strict JSON/YAML loading and quantities."""

from __future__ import annotations

import pytest

from api.config.quantity import format_bytes, parse_bytes
from api.config.strict import load_yaml_documents, loads_json
from api.errors import ConfigError


def test_duplicate_keys_inside_lists_are_found_with_their_index() -> None:
    with pytest.raises(ConfigError) as e:
        loads_json('{"a": [{"b": 1}, {"c": 1, "c": 2}]}', "doc")
    assert e.value.field == "doc.a[1].c"


def test_json_without_duplicates_loads_as_plain_dicts() -> None:
    assert loads_json(b'{"a": [{"b": 1}], "c": {"d": null}}', "doc") == {"a": [{"b": 1}], "c": {"d": None}}


def test_non_utf8_json_is_refused() -> None:
    with pytest.raises(ConfigError, match="not UTF-8"):
        loads_json(b'{"a": "\xff"}', "doc")


def test_yaml_duplicate_key_is_reported_with_path_and_line() -> None:
    text = "kind: DeviceClass\n---\nspec:\n  config:\n  - opaque:\n      driver: a\n      driver: b\n"
    with pytest.raises(ConfigError) as e:
        load_yaml_documents(text)
    assert e.value.field == "<document 1>.spec.config[0].opaque.driver"
    assert "line 7" in str(e.value)


def test_yaml_stream_loads_every_non_empty_document() -> None:
    assert load_yaml_documents("a: 1\n---\n---\nb: [1, 2]\n") == [{"a": 1}, {"b": [1, 2]}]


def test_invalid_yaml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml_documents("a: [1\n")


@pytest.mark.parametrize(
    ("text", "value"),
    [("10Gi", 10 << 30), ("1.5Gi", 3 << 29), ("500M", 500 * 10**6), ("1e9", 10**9), ("1E", 10**18), ("2048", 2048),
     ("1k", 1000), ("3000m", 3), (".5Ki", 512), ("+1Mi", 1 << 20)],
)  # fmt: skip
def test_quantities_read_as_bytes(text: str, value: int) -> None:
    assert parse_bytes(text, "f") == value


@pytest.mark.parametrize("text", ["1.5", "1m", "-1Gi", "0", "10 Gi", "Gi", "1GB", "1e", ""])
def test_quantities_that_are_not_whole_positive_bytes_are_refused(text: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_bytes(text, "limit")
    assert e.value.field == "limit"


def test_bytes_format_in_the_largest_exact_binary_unit() -> None:
    assert [format_bytes(v) for v in (10 << 30, 3 << 29, 1000, 1 << 60)] == ["10Gi", "1536Mi", "1000", "1Ei"]
