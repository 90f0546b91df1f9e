"""Lint parsed documents: structure, cross-field rules, CEL, opaque configs, class references and, given
slices, whether anything could ever satisfy each request. Pure: documents and options in, findings out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.config import DEFAULT_DRIVER_NAME
from cli.lint import checks, rules, schema
from cli.lint.feasibility import Environment, Evaluator
from cli.lint.findings import Finding, Issue
from cli.lint.fit import fit_issues
from cli.lint.load import Document
from cli.lint.objects import Manifest, manifest
from cli.lint.shapes import shape

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Options:
    driver: str = DEFAULT_DRIVER_NAME
    shipped: Mapping[str, Obj] = field(default_factory=dict)  # the driver's DeviceClasses by name
    cluster: Mapping[str, Obj] | None = None  # the cluster's DeviceClasses, when a cluster was asked
    environments: tuple[Environment, ...] = ()

    @property
    def classes(self) -> dict[str, Obj]:
        return {**self.shipped, **(self.cluster or {})}

    @property
    def classes_from(self) -> str:
        """Where classes were looked for, for messages."""
        cluster = ", the shipped classes or the cluster" if self.cluster is not None else " or the shipped classes"
        return f"the linted files{cluster}"


@dataclass(frozen=True)
class Result:
    findings: tuple[Finding, ...]
    documents: int  # documents read
    linted: int  # documents of the kinds we lint


def _finding(doc: Document, issue: Issue) -> Finding:
    return Finding(
        doc.source, doc.index, doc.line_of(issue.field), doc.kind, doc.name, issue.check, issue.field, issue.message
    )


def _first_pass(m: Manifest, driver: str) -> list[Issue]:
    issues = list(m.document.issues)
    issues += schema.check(m.body, shape(m.version, m.kind), "")
    issues += rules.check(m)
    issues += checks.cel_issues(m)
    issues += checks.config_issues(m, driver)
    return issues


def lint_documents(documents: Sequence[Document], options: Options) -> Result:
    manifests: list[tuple[Manifest, list[Issue]]] = []
    findings: list[Finding] = []
    for doc in documents:
        view = manifest(doc)
        if isinstance(view, str):
            findings.append(_finding(doc, Issue("schema", "", view)))
        elif view is not None:
            manifests.append((view, _first_pass(view, options.driver)))
    file_classes = {m.name: m.body for m, _ in manifests if m.kind == "DeviceClass" and m.name}
    classes = {**options.classes, **file_classes}
    broken_classes = {m.name for m, issues in manifests if m.kind == "DeviceClass" and issues}
    usable = {name: body for name, body in classes.items() if name not in broken_classes}
    evaluators = [Evaluator(env, usable, options.driver) for env in options.environments]
    for m, issues in manifests:
        issues = issues + checks.reference_issues(m, classes.keys(), options.classes_from)
        skip = [i.field for i in issues]  # what is already wrong is not evaluated against devices
        # The shipped classes cover every GPU the driver knows; most select nothing on one machine.
        shipped = m.kind == "DeviceClass" and options.shipped.get(m.name) == m.body
        for evaluator in evaluators:
            if m.kind == "DeviceClass":
                issues += [] if skip or shipped else evaluator.class_issues(m)
            else:
                issues += evaluator.request_issues(m, skip)
            issues += fit_issues(m, evaluator, options.driver, skip)
        findings += [_finding(m.document, issue) for issue in issues]
    ordered = sorted(findings, key=lambda f: (f.source, f.document, f.line or 0, f.field))
    return Result(tuple(ordered), len(documents), len(manifests))
