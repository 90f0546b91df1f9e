"""Semantic versions as blang/semver parses and orders them."""

from __future__ import annotations

import pytest

from dra_driver.cel import parse_semver


def test_parses_core_prerelease_and_build() -> None:
    v = parse_semver("1.2.3-rc.1+build.5")
    assert (v.major, v.minor, v.patch, v.pre, v.build) == (1, 2, 3, ("rc", 1), ("build", "5"))
    assert str(v) == "1.2.3-rc.1+build.5"
    assert v.core() == "1.2.3-rc.1"


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.0", "2.0.0"),
        ("1.9.0", "1.10.0"),
        ("1.0.0-alpha", "1.0.0"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-beta.2", "1.0.0-beta.11"),
        ("1.0.0-rc.1", "1.0.0"),
    ],
)
def test_orders_versions_by_semver_precedence(lower: str, higher: str) -> None:
    assert parse_semver(lower).compare(parse_semver(higher)) == -1
    assert parse_semver(higher).compare(parse_semver(lower)) == 1


def test_build_metadata_is_ignored_by_equality() -> None:
    assert parse_semver("1.0.0+a") == parse_semver("1.0.0+b")
    assert parse_semver("1.0.0+a").compare(parse_semver("1.0.0")) == 0


@pytest.mark.parametrize("text", ["", "1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1.a.0"])
def test_rejects_what_is_not_strict_semver(text: str) -> None:
    with pytest.raises(ValueError):
        parse_semver(text)


@pytest.mark.parametrize(("text", "expected"), [("v1.2", "1.2.0"), ("01.01.01", "1.1.1"), ("1", "1.0.0")])
def test_normalization_accepts_short_and_prefixed_versions(text: str, expected: str) -> None:
    assert str(parse_semver(text, normalize=True)) == expected


def test_normalization_refuses_short_versions_with_prerelease() -> None:
    with pytest.raises(ValueError, match="short version"):
        parse_semver("1.2-rc", normalize=True)
