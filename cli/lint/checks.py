"""Checks beyond structure: CEL selectors compile, this driver's opaque configs decode, device classes
exist. Pure.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection

from api.config.entries import config_errors
from api.errors import ConfigError
from cli.lint.findings import Issue
from cli.lint.objects import Manifest
from dra_driver.cel import CelCompileError, compile_selector


def selectors(m: Manifest) -> list[tuple[str, str]]:
    """(field path, expression) of every CEL selector: the class's, or each request alternative's."""
    return m.class_selectors + [s for r in m.requests for a in r.alternatives for s in a.selectors]


def cel_issues(m: Manifest) -> list[Issue]:
    issues = []
    for path, expression in selectors(m):
        if not expression.strip():
            issues.append(Issue("cel", path, "required: an empty expression selects nothing"))
            continue
        try:
            compile_selector(expression)
        except CelCompileError as e:
            issues.append(Issue("cel", path, e.message))
    return issues


def error_message(error: ConfigError) -> str:
    """The message of a ConfigError without its leading ``field: ``."""
    text = str(error)
    prefix = f"{error.field}: "
    return text[len(prefix) :] if error.field and text.startswith(prefix) else text


def config_issues(m: Manifest, driver: str) -> list[Issue]:
    return [Issue("config", e.field, error_message(e)) for e in config_errors(m.configs, driver, m.config_path)]


def reference_issues(m: Manifest, known: Collection[str], where: str) -> list[Issue]:
    """Requests naming a DeviceClass that is not in ``known``; ``where`` says where classes were looked for."""
    issues = []
    for request in m.requests:
        for alt in request.alternatives:
            name = alt.device_class
            if not name or name in known:
                continue
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            issues.append(
                Issue("reference", f"{alt.path}.deviceClassName", f"device class {name!r} is not in {where}{hint}")
            )
    return issues
