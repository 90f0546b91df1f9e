"""Both quantity parsers on fuzzed text: a value or their own error (ConfigError for configs, ValueError for
CEL), never another exception; values round-trip through their formatters and the two parsers agree."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from api.config.quantity import MAX_BYTES, format_bytes, parse_bytes
from api.errors import ConfigError
from dra_driver.cel import CelError, compile_selector, device_view, parse_quantity
from dra_driver.cel.quantity import NANO, Quantity, format_quantity
from tests.fuzz.strategies import FUZZ, huge_ints, nasty_text, quantity_texts

texts = st.one_of(quantity_texts(), nasty_text)


@settings(FUZZ, max_examples=600)
@given(st.one_of(texts, huge_ints, st.floats(), st.none(), st.booleans()))
def test_config_quantities_are_whole_bytes_in_range_or_a_config_error(value: object) -> None:
    try:
        size = parse_bytes(value, "limit")
    except ConfigError as e:
        assert e.field == "limit" and len(str(e)) < 300
        return
    assert 1 <= size <= MAX_BYTES


@settings(FUZZ, max_examples=600)
@given(texts)
def test_cel_quantities_parse_or_raise_value_error_and_agree_with_config_bytes(text: str) -> None:
    try:
        quantity = parse_quantity(text)
    except ValueError:
        quantity = None
    try:
        size = parse_bytes(text, "limit")
    except ConfigError:
        return
    assert quantity is not None and quantity.nanos == size * NANO


@settings(FUZZ, max_examples=200)
@given(st.integers(1, MAX_BYTES))
def test_bytes_round_trip_through_their_format(size: int) -> None:
    assert parse_bytes(format_bytes(size), "limit") == size


@settings(FUZZ, max_examples=200)
@given(st.integers(-(2**63 - 1) * NANO, (2**63 - 1) * NANO))
def test_cel_quantities_round_trip_through_their_format(nanos: int) -> None:
    assert parse_quantity(format_quantity(nanos)) == Quantity(nanos)


DEVICE = device_view("d", {"name": "x", "capacity": {"memory": {"value": "80Gi"}}})


@settings(FUZZ, max_examples=100)
@given(texts)
def test_quantity_literals_in_selectors_evaluate_or_raise_a_cel_error(text: str) -> None:
    literal = json.dumps(text)
    expression = f'isQuantity({literal}) && device.capacity["d"].memory.isGreaterThan(quantity({literal}))'
    with contextlib.suppress(CelError):
        compile_selector(expression).matches(DEVICE)
