"""The selector memo: which fields an expression reads, keys per device, and results equal to a real evaluation."""

from __future__ import annotations

from typing import Any

import pytest

from dra_driver.cel import CelEvalError, compile_selector, device_view
from dra_driver.cel.memo import Ref, attributes_invalid, references, source_key

D = "gpu.example.com"


@pytest.mark.parametrize(
    ("expression", "refs"),
    [
        ('device.driver == "x"', (Ref("driver"),)),
        (
            f'device.attributes["{D}"].model == "a" && device.capacity["{D}"].memory.compareTo(quantity("1Gi")) > 0',
            (Ref("attributes", D, "model"), Ref("capacity", D, "memory")),
        ),
        (
            f'device . attributes [ "{D}" ] . model == "a" || device.attributes["{D}"].model == "b"',
            (Ref("attributes", D, "model"),),
        ),
        ("device.allowMultipleAllocations", (Ref("allowMultipleAllocations"),)),
        ("true", ()),
    ],
)
def test_references_of_plain_field_reads(expression: str, refs: tuple[Ref, ...]) -> None:
    assert references(expression) == refs


@pytest.mark.parametrize(
    "expression",
    [
        f'size(device.attributes["{D}"]) > 0',  # a whole domain
        "size(device.attributes) > 0",
        f'"model" in device.attributes["{D}"]',
        f"device.attributes['{D}'].model == 'a'",  # single quotes: not recognised, evaluated per device
        'device.attributes["a\\"b"].c',
        'device.attributes["a/b"].c',
        f'[1].exists(device, device.attributes["{D}"].model == "a")',  # a variable named device
        f'device.attributes["{D}"].model == "device"',  # the word in a string
        f'device.attributes["{D}"].model == "a" // device',  # or in a comment
    ],
)
def test_references_refuse_anything_else(expression: str) -> None:
    assert references(expression) is None


def _device(**attributes: dict[str, Any]) -> dict[str, Any]:
    return {"name": "d", "attributes": attributes, "capacity": {"memory": {"value": "40Gi"}}}


def test_source_key_tells_equal_values_of_other_types_apart() -> None:
    refs = (Ref("attributes", D, "model"),)
    keys = {source_key(refs, D, _device(model=raw)) for raw in ({"string": 1}, {"string": True}, {"string": "1"})}
    assert len(keys) == 3
    lists = {source_key(refs, D, _device(model={"strings": v})) for v in ([1], [True])}
    assert len(lists) == 2


def test_source_key_reads_bare_and_qualified_names_and_gives_up_when_both_are_set() -> None:
    refs = (Ref("attributes", D, "model"), Ref("capacity", D, "memory"), Ref("attributes", "other.com", "x"))
    bare = source_key(refs, D, _device(model={"string": "a"}, uuid={"string": "1"}))
    qualified = source_key(refs, D, _device(**{f"{D}/model": {"string": "a"}}, uuid={"string": "2"}))
    assert bare == qualified is not None
    assert source_key(refs, D, _device(model={"string": "b"})) != bare
    assert source_key(refs, "other.com", _device(model={"string": "a"})) != bare  # bare names are the driver's
    assert source_key(refs, D, _device(model={"string": "a"}, **{f"{D}/model": {"string": "a"}})) is None


@pytest.mark.parametrize(
    "attributes",
    [
        {"a": {"string": "x"}, "b": {"int": 3}, "c": {"bool": False}, "v": {"version": "1.2.3"}},
        {"a": {"string": "x"}, "v": {"version": "not-semver"}},
        {"a": {}},
        {"a": {"string": None}},
        {"a": {"string": "x", "version": "1.0.0"}},
        {"a": {"ints": [1, 2]}, "b": {"versions": ["1.0.0", "x"]}},
        {"a": {"int": "7"}},
    ],
)
def test_attributes_invalid_is_what_the_view_says(attributes: dict[str, Any]) -> None:
    source = {"name": "d", "attributes": attributes}
    assert attributes_invalid(source) == device_view(D, source).invalid


@pytest.mark.parametrize(
    "expression",
    [
        f'device.attributes["{D}"].model == "a"',
        f'device.attributes["{D}"].missing == "a"',  # a runtime error, remembered and raised again
        f'device.capacity["{D}"].memory.compareTo(quantity("40Gi")) >= 0',
        'device.driver == "gpu.example.com"',
    ],
)
def test_remembered_results_equal_evaluating_every_device(expression: str) -> None:
    selector = compile_selector(expression)
    devices = [_device(model={"string": m}, uuid={"string": f"u{i}"}) for i, m in enumerate(["a", "a", "b", "a", "b"])]
    devices.append(_device(model={"string": "a"}, broken={"version": "x"}))  # invalid: every selector fails

    def outcome(source: dict[str, Any], remembered: bool) -> object:
        view = device_view(D, source)
        try:
            if remembered:
                return selector.matches_source(D, source, attributes_invalid(source), lambda: view)
            return selector.matches(view)
        except CelEvalError as e:
            return ("error", e.message)

    for source in devices:
        assert outcome(source, remembered=True) == outcome(source, remembered=False)
