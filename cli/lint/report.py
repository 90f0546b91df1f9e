"""Render lint results: a table for people, JSON for tools. Pure."""

from __future__ import annotations

import json

from cli.lint.core import Result
from cli.output import table


def render(result: Result, fmt: str) -> str:
    if fmt == "json":
        data = {
            "documents": result.documents,
            "linted": result.linted,
            "findings": [f.to_json() for f in result.findings],
        }
        return json.dumps(data, indent=2) + "\n"
    summary = (
        f"{len(result.findings)} finding(s) in {result.linted} linted document(s) of {result.documents}\n"
        if result.findings
        else f"no findings in {result.linted} linted document(s) of {result.documents}\n"
    )
    if not result.findings:
        return summary
    rows = [(f.location, f.object, f.check, f.field or "-", f.message.splitlines()[0]) for f in result.findings]
    lines = table(("LOCATION", "OBJECT", "CHECK", "FIELD", "MESSAGE"), rows).splitlines()
    out = [lines[0]]
    for line, finding in zip(lines[1:], result.findings, strict=True):
        out.append(line)
        out += [f"    {more}" for more in finding.message.splitlines()[1:]]  # e.g. CEL's caret diagram
    return "\n".join(out) + "\n" + summary
