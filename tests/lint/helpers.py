"""Helpers: lint YAML text, optionally against a simulated machine's slices (built once per profile and mode)."""

from __future__ import annotations

import functools
from typing import Any

from api.partitioning import parse_mode
from cli.lint import Finding, Options, lint_documents, parse_documents
from cli.lint.command import profile_environment
from cli.lint_cmd import EVERY_MODE, profile_slices
from dra_driver.classes import device_classes

SHIPPED = {c["metadata"]["name"]: c for c in device_classes()}


@functools.cache
def slices_of(profile: str, mode: str | None) -> dict[str, list[Any]]:
    modes = (parse_mode(mode, "mode"),) if mode else EVERY_MODE
    return profile_slices(profile, modes)


def lint(text: str, profile: str | None = None, mode: str | None = None) -> list[Finding]:
    environments = (profile_environment(profile, slices_of(profile, mode)),) if profile else ()
    options = Options(shipped=SHIPPED, environments=environments)
    return list(lint_documents(parse_documents(text, "test.yaml"), options).findings)


def fields(findings: list[Finding], check: str | None = None) -> list[str]:
    return [f.field for f in findings if check is None or f.check == check]
