"""Semantic versions 2.0.0 as CEL's ``kubernetes.Semver`` sees them. Pure.

Parsing follows ``github.com/blang/semver/v4`` ``Parse`` (what Kubernetes' CEL semver library uses);
``parse_semver(text, normalize=True)`` follows the library's ``normalizeAndParse``. Build metadata is kept
for display but ignored by comparison and equality, like ``semver.Version.Compare`` / ``EQ``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_ALPHANUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
_DIGITS = frozenset("0123456789")

Identifier = int | str


@dataclass(frozen=True)
class Semver:
    major: int
    minor: int
    patch: int
    pre: tuple[Identifier, ...] = ()
    build: tuple[str, ...] = field(default=(), compare=False)

    def compare(self, other: Semver) -> int:
        for a, b in ((self.major, other.major), (self.minor, other.minor), (self.patch, other.patch)):
            if a != b:
                return 1 if a > b else -1
        return _compare_pre(self.pre, other.pre)

    def core(self) -> str:
        """The version without build metadata: equal versions have equal cores."""
        text = f"{self.major}.{self.minor}.{self.patch}"
        return text + "-" + ".".join(str(p) for p in self.pre) if self.pre else text

    def __str__(self) -> str:
        return self.core() + ("+" + ".".join(self.build) if self.build else "")


def _compare_pre(a: tuple[Identifier, ...], b: tuple[Identifier, ...]) -> int:
    if not a or not b:  # a version without pre-release is greater than one with
        return (not a) - (not b)
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        if isinstance(x, int) and isinstance(y, int):
            return 1 if x > y else -1
        if isinstance(x, int):  # numeric identifiers sort before alphanumeric ones
            return -1
        if isinstance(y, int):
            return 1
        return 1 if x > y else -1
    return (len(a) > len(b)) - (len(a) < len(b))


def parse_semver(text: str, normalize: bool = False) -> Semver:
    """Raises ValueError with blang/semver's message when ``text`` is not a semantic version."""
    if normalize:
        text = _normalize(text)
    if not text:
        raise ValueError("Version string empty")
    parts = text.split(".", 2)
    if len(parts) != 3:
        raise ValueError("No Major.Minor.Patch elements found")
    major = _number(parts[0], "major")
    minor = _number(parts[1], "minor")
    rest = parts[2]
    build: tuple[str, ...] = ()
    pre: tuple[Identifier, ...] = ()
    if "+" in rest:
        rest, build_text = rest.split("+", 1)
        build = tuple(_build_identifier(b) for b in build_text.split("."))
    if "-" in rest:
        rest, pre_text = rest.split("-", 1)
        pre = tuple(_pre_identifier(p) for p in pre_text.split("."))
    patch = _number(rest, "patch")
    return Semver(major, minor, patch, pre, build)


def _number(text: str, what: str) -> int:
    if not text or not set(text) <= _DIGITS:
        raise ValueError(f"Invalid character(s) found in {what} number {text!r}")
    if len(text) > 1 and text[0] == "0":
        raise ValueError(f"{what.capitalize()} number must not contain leading zeroes {text!r}")
    value = int(text)
    if value >= 2**64:
        raise ValueError(f"{what.capitalize()} number out of range {text!r}")
    return value


def _pre_identifier(text: str) -> Identifier:
    if not text:
        raise ValueError("Prerelease is empty")
    if set(text) <= _DIGITS:
        if len(text) > 1 and text[0] == "0":
            raise ValueError(f"Numeric PreRelease version must not contain leading zeroes {text!r}")
        return int(text)
    if not set(text) <= _ALPHANUM:
        raise ValueError(f"Invalid character(s) found in prerelease {text!r}")
    return text


def _build_identifier(text: str) -> str:
    if not text:
        raise ValueError("Build meta data is empty")
    if not set(text) <= _ALPHANUM:
        raise ValueError(f"Invalid character(s) found in build meta data {text!r}")
    return text


def _normalize(text: str) -> str:
    """``normalizeAndParse``: drop a leading "v", strip leading zeros, fill in missing minor/patch."""
    text = text.removeprefix("v")
    parts = text.split(".", 2)
    for i, part in enumerate(parts):
        if len(part) > 1:
            part = part.lstrip("0")
            if not part or part[0] not in _DIGITS:
                part = "0" + part
            parts[i] = part
    if len(parts) < 3:
        if any(c in parts[-1] for c in "+-"):
            raise ValueError("short version cannot contain PreRelease/Build meta data")
        parts += ["0"] * (3 - len(parts))
    return ".".join(parts)
