"""Bounded parsing: quantities, JSON and YAML that are too large, too deep or too clever are refused quickly,
with a ConfigError naming the field, instead of hanging or crashing the process that parses them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.config import API_VERSION, GpuConfig, Mps, decode_opaque
from api.config.entries import config_errors
from api.config.quantity import MAX_BYTES, parse_bytes
from api.config.strict import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    load_yaml_documents,
    loads_json,
    parse_json,
    type_name,
    want_int,
)
from api.errors import ConfigError
from api.partitioning import load_config, parse_mode

P = "spec.devices.config[0].opaque.parameters"
LIMIT = f"{P}.sharing.mpsConfig.defaultPinnedDeviceMemoryLimit"


def mps(limit: object) -> dict[str, Any]:
    sharing = {"strategy": "MPS", "mpsConfig": {"defaultPinnedDeviceMemoryLimit": limit}}
    return {"apiVersion": API_VERSION, "kind": "GpuConfig", "sharing": sharing}


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("text", ["1e999999999", "1e10000000", "1e5000", "99999999999999999999Ei", "1e19", "8Ei"])
def test_huge_memory_limits_are_out_of_range_naming_the_field_and_the_range(text: str) -> None:
    with pytest.raises(ConfigError) as e:
        decode_opaque(mps(text), P)
    assert e.value.field == LIMIT
    assert (
        str(e.value) == f"{LIMIT}: {text!r} is out of range: a quantity from 1 byte to 8Ei - 1 ({MAX_BYTES}), e.g. 10Gi"
    )


def test_huge_memory_limits_in_raw_json_are_out_of_range_too() -> None:
    with pytest.raises(ConfigError, match="out of range") as e:
        decode_opaque(json.dumps(mps("1e999999999")).encode(), P)
    assert e.value.field == LIMIT


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7Ei", 7 << 60), (str(MAX_BYTES), MAX_BYTES), (MAX_BYTES, MAX_BYTES), ("1e18", 10**18), ("1000e-3", 1),
     ("100000000000000000000e-2", 10**18), ("0.5Ki", 512), ("+1.5Gi", 3 << 29)],
)  # fmt: skip
def test_limits_up_to_the_int64_maximum_are_read_exactly(value: object, expected: int) -> None:
    assert parse_bytes(value, "f") == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [(MAX_BYTES + 1, "9223372036854775808 is out of range"), (10**5000, "2**16609 or more is out of range"),
     ("1" * 5000, "(5000 characters) is out of range"), ("1e-99999", "is not a whole number of bytes"),
     ("1e-0000000000000000000001", "is not a whole number of bytes"), ("9" * 20, "is out of range"),
     ("1e" + "9" * 70, "is out of range"), ("x" * 100_000, "(100000 characters) is not a quantity")],
    ids=["int64+1", "10**5000", "5000 digits", "tiny", "tiny 22-digit exponent", "20 digits", "70-digit exponent", "100k"],
)  # fmt: skip
def test_absurd_quantities_are_refused_without_arithmetic_on_their_size(value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=r"^f: ") as e:
        parse_bytes(value, "f")
    assert words in str(e.value) and len(str(e.value)) < 200


def test_a_json_document_nested_deeper_than_the_limit_names_the_deepest_path() -> None:
    assert loads_json(nested(MAX_DEPTH), "doc") is not None
    with pytest.raises(ConfigError, match="nested too deeply: more than 64 levels") as e:
        loads_json(nested(MAX_DEPTH + 1), "doc")
    assert e.value.field == "doc" + "[0]" * MAX_DEPTH


def test_json_nested_past_the_interpreter_recursion_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nested too deeply") as e:
        decode_opaque(b"[" * 100_000, P)
    assert e.value.field == P


def test_deeply_nested_opaque_parameters_are_refused() -> None:
    raw = b'{"apiVersion": "x", "kind": "GpuConfig", "sharing": ' + nested(200).encode() + b"}"
    with pytest.raises(ConfigError, match="nested too deeply") as e:
        decode_opaque(raw, P)
    assert e.value.field.startswith(f"{P}.sharing[0]")


def test_json_integers_longer_than_python_can_convert_are_out_of_range() -> None:
    with pytest.raises(ConfigError, match=r"\(5000 characters\) is out of range") as e:
        loads_json('{"a": [1, ' + "7" * 5000 + "]}", "doc")
    assert e.value.field == "doc.a[1]"


def test_nan_and_infinity_are_not_json() -> None:
    with pytest.raises(ConfigError, match="is not a JSON value") as e:
        loads_json('{"a": {"b": NaN}}', "doc")
    assert e.value.field == "doc.a.b"
    with pytest.raises(ConfigError, match="'-Infinity' is not a JSON value"):
        loads_json("[-Infinity]", "doc")


def test_documents_over_3_mib_are_refused_before_parsing() -> None:
    with pytest.raises(ConfigError, match=r"is too large: 3145729 bytes, at most 3145728 \(3 MiB\)") as e:
        decode_opaque(b" " * (MAX_DOCUMENT_BYTES + 1), P)
    assert e.value.field == P
    with pytest.raises(ConfigError, match="is too large"):
        load_yaml_documents("#" * (MAX_DOCUMENT_BYTES + 1))


def test_parse_json_keeps_the_last_duplicate_and_lists_every_duplicate_path() -> None:
    value, duplicates = parse_json('{"a": 1, "a": 2, "b": [{"c": 1, "c": 3}]}', "")
    assert value == {"a": 2, "b": [{"c": 3}]}
    assert duplicates == ["a", "b[0].c"]


def test_a_recursive_yaml_alias_is_refused_naming_where_it_is() -> None:
    with pytest.raises(ConfigError, match=r"alias \*a is inside the node it refers to") as e:
        load_yaml_documents("x: 1\n---\na: &a [*a]\n")
    assert e.value.field == "<document 1>.a[0]"
    with pytest.raises(ConfigError, match="inside the node"):
        load_yaml_documents("a: &a {b: {c: *a}}\n")


def test_yaml_aliases_that_expand_exponentially_are_refused() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    with pytest.raises(ConfigError, match=f"aliases expand the document by more than {MAX_ALIAS_NODES} nodes") as e:
        load_yaml_documents("\n".join(lines))
    assert e.value.field == "<document 0>"


def test_yaml_aliases_and_merge_keys_within_the_limits_still_work() -> None:
    text = "base: &base {strategy: MPS}\nclaim: {<<: *base, extra: [*base, *base]}\n"
    [doc] = load_yaml_documents(text)
    assert doc["claim"] == {"strategy": "MPS", "extra": [{"strategy": "MPS"}, {"strategy": "MPS"}]}


def test_yaml_aliases_cannot_smuggle_nesting_past_the_limit() -> None:
    deep = "[" * 40 + "x" + "]" * 40
    with pytest.raises(ConfigError, match="aliases expanded"):
        load_yaml_documents(f"a: &a {deep}\nb: {'[' * 30}*a{']' * 30}\n")


def block(levels: int) -> str:
    """``a:`` holding ``levels`` - 1 lists in block style: ``levels`` levels in all."""
    return "a:\n" + "".join("  " * i + "- \n" for i in range(levels - 2)) + "  " * (levels - 2) + "- x\n"


@pytest.mark.parametrize("deep", [lambda n: "a: " + nested(n - 1), block], ids=["flow", "block"])
def test_yaml_nested_deeper_than_the_limit_names_the_path(deep: Any) -> None:
    assert load_yaml_documents(deep(MAX_DEPTH))
    with pytest.raises(ConfigError, match="nested too deeply") as e:
        load_yaml_documents(deep(MAX_DEPTH + 1))
    assert e.value.field == "<document 0>.a" + "[0]" * (MAX_DEPTH - 1)


def test_yaml_flow_nesting_of_megabytes_is_refused_at_the_65th_level() -> None:
    with pytest.raises(ConfigError, match=r"nested too deeply.*\(line 1, column 65\)") as e:
        load_yaml_documents("[" * 3_000_000)
    assert e.value.field == "<yaml>"


@pytest.mark.parametrize("number", ["1" * 5000, "1" + ":1" * 100_000, "0x" + "f" * 200], ids=["long", "base 60", "hex"])
def test_yaml_integers_too_long_to_convert_are_out_of_range(number: str) -> None:
    with pytest.raises(ConfigError, match="is out of range") as e:
        load_yaml_documents(f"a:\n  b: {number}\n")
    assert e.value.field == "<document 0>.a.b"


def test_one_hundred_thousand_config_entries_are_checked_one_by_one() -> None:
    entries = [{"opaque": {"driver": "other"}}] * 100_000 + [{"opaque": {"driver": "me", "parameters": mps("1e99")}}]
    [error] = config_errors(entries, "me", "spec.devices.config")
    assert (
        error.field == "spec.devices.config[100000].opaque.parameters.sharing.mpsConfig.defaultPinnedDeviceMemoryLimit"
    )


def test_messages_show_huge_values_by_their_size() -> None:
    assert type_name(10**5000) == "integer 2**16609 or more"
    assert type_name("x" * 1000) == f'string "{"x" * 59}"… (1000 characters)'
    with pytest.raises(ConfigError, match=r"got -2\*\*16609 or less"):
        want_int(-(10**5000), "f", 1, 100)


def test_a_good_config_still_decodes_after_all_that() -> None:
    assert decode_opaque(json.dumps(mps("10Gi")), P) == GpuConfig(Mps(None, 10 << 30))


def test_partitioning_replicas_of_thousands_of_digits_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"timeslice replicas must be 2..64, got '9.*' \(5000 characters\)"):
        parse_mode("timeslice:" + "9" * 5000, "defaultMode")
    with pytest.raises(ConfigError, match="unknown mode"):
        parse_mode("timeslice:\u0664", "defaultMode")  # an Arabic-Indic four is not a number here


def test_partitioning_config_text_is_read_within_the_limits() -> None:
    assert str(load_config(f"apiVersion: {API_VERSION}\nkind: PartitioningConfig\ndefaultMode: mig\n").default) == "mig"
    with pytest.raises(ConfigError, match="inside the node"):
        load_config("a: &a [*a]\n")
    with pytest.raises(ConfigError, match="holds 2 documents"):
        load_config("a: 1\n---\nb: 2\n")


@pytest.mark.parametrize("text", ["a: 2020-13-45", "a: !!int", "a: !!int 0x", "a: !!float x", "a: !!bool maybe"])
def test_yaml_scalars_pyyaml_cannot_construct_are_config_errors_not_crashes(text: str) -> None:
    with pytest.raises(ConfigError, match=r"is not valid YAML: '.*' is not a valid tag:yaml.org,2002:"):
        load_yaml_documents(text)
