"""Kubernetes quantities: parsing like resource.ParseQuantity, exact arithmetic and comparison."""

from __future__ import annotations

import pytest

from dra_driver.cel import Quantity, parse_quantity
from dra_driver.cel.quantity import ERR_FORMAT, ERR_SUFFIX, NANO


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("0", 0),
        ("40Gi", 40 * 2**30 * NANO),
        ("1Ki", 1024 * NANO),
        ("1k", 1000 * NANO),
        ("1.5G", 1_500_000_000 * NANO),
        ("100m", 100_000_000),
        ("1u", 1000),
        ("1n", 1),
        ("-2", -2 * NANO),
        ("+3", 3 * NANO),
        ("1e3", 1000 * NANO),
        ("1E3", 1000 * NANO),
        ("5E", 5 * 10**18 * NANO),
        ("0.5Ki", 512 * NANO),
        ("007", 7 * NANO),
    ],
)
def test_parses_every_suffix_kind_to_the_exact_value(text: str, nanos: int) -> None:
    assert parse_quantity(text).nanos == nanos


def test_rounds_values_finer_than_nano_up_away_from_zero() -> None:
    assert parse_quantity("0.0000000001").nanos == 1
    assert parse_quantity("-0.0000000001").nanos == -1


def test_caps_binary_values_at_the_int64_maximum() -> None:
    assert parse_quantity("100000000Ei").nanos == (2**63 - 1) * NANO


@pytest.mark.parametrize(
    ("text", "message"),
    [("", ERR_FORMAT), ("1K", ERR_SUFFIX), ("1Gb", ERR_FORMAT), ("1Mii", ERR_SUFFIX), ("x", ERR_FORMAT)],
)
def test_rejects_malformed_quantities_with_kubernetes_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"quantit|suffix") as info:
        parse_quantity(text)
    assert str(info.value) == message


def test_equality_and_order_are_by_value_not_by_spelling() -> None:
    assert parse_quantity("1Gi") == parse_quantity("1024Mi")
    assert parse_quantity("1G") < parse_quantity("1Gi")
    assert parse_quantity("1Gi").compare(parse_quantity("1073741824")) == 0


def test_arithmetic_and_integer_conversion() -> None:
    total = parse_quantity("50k") + Quantity.from_int(20) - parse_quantity("100k")
    assert total.as_integer() == -49980
    assert total.sign() == -1
    assert not parse_quantity("1.5").is_integer()
    with pytest.raises(ValueError, match="cannot convert value to integer"):
        parse_quantity("1.5").as_integer()
    assert not parse_quantity("9999999999999999999999999999999999999G").is_integer()
    assert parse_quantity("1.5").as_approximate_float() == 1.5


def test_displays_the_text_it_was_parsed_from_else_an_exact_rendering() -> None:
    assert str(parse_quantity("40Gi")) == "40Gi"
    assert str(Quantity(2 * 2**30 * NANO)) == "2Gi"
    assert str(Quantity(NANO // 2)) == "500m"
