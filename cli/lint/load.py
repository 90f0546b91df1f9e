"""Manifest files → documents: multi-document YAML or JSON, ``kind: List`` expanded, duplicate keys found,
and the line of every field kept so that findings can point into the file. Pure (text in, values out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from api.config import strict
from api.errors import ConfigError
from cli.lint.findings import Issue


class Unreadable(Exception):
    """The file cannot be read as YAML or JSON at all (the linter exits 2)."""


@dataclass(frozen=True)
class Document:
    source: str
    index: int
    body: Any
    lines: Mapping[str, int] = field(default_factory=dict)  # field path -> 1-based line
    issues: tuple[Issue, ...] = ()  # found while reading (duplicate keys)

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, or of the nearest enclosing field that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            cut = max(path.rfind("."), path.rfind("["))
            path = path[: max(cut, 0)]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind") or "") if isinstance(self.body, Mapping) else ""

    @property
    def name(self) -> str:
        meta = self.body.get("metadata") if isinstance(self.body, Mapping) else None
        if not isinstance(meta, Mapping):
            return ""
        return str(meta.get("name") or meta.get("generateName") or "")


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def _index(node: yaml.Node, path: str, lines: dict[str, int], issues: list[Issue]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = _join(path, key)
            if key in seen:
                issues.append(
                    Issue("schema", child, "duplicate key; each key may appear only once (the last one would win)")
                )
                continue
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, lines, issues)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, f"{path}[{i}]", lines, issues)


def _rebase(mapping: Mapping[str, int], prefix: str) -> dict[str, int]:
    """Paths under ``prefix`` (``items[3]``), relative to it."""
    out = {}
    for path, line in mapping.items():
        if path == prefix:
            out[""] = line
        elif path.startswith(prefix + "."):
            out[path[len(prefix) + 1 :]] = line
    return out


def _issues_under(issues: list[Issue], prefix: str) -> tuple[Issue, ...]:
    return tuple(
        Issue(i.check, i.field[len(prefix) + 1 :], i.message) for i in issues if i.field.startswith(prefix + ".")
    )


def _expand(source: str, start: int, body: Any, lines: dict[str, int], issues: list[Issue]) -> list[Document]:
    items = body.get("items") if isinstance(body, Mapping) and str(body.get("kind", "")).endswith("List") else None
    if not isinstance(items, list):
        return [Document(source, start, body, lines, tuple(issues))]
    return [
        Document(source, start + i, item, _rebase(lines, f"items[{i}]"), _issues_under(issues, f"items[{i}]"))
        for i, item in enumerate(items)
    ]


def parse_documents(text: str, source: str) -> list[Document]:
    """Every object in ``text`` (YAML stream or JSON); raises ``Unreadable`` if it is neither.

    Reading is bounded (``api.config.strict``): at most 3 MiB and 64 levels of nesting, no recursive YAML
    aliases and at most 100,000 nodes added by aliases. Beyond those the file is ``Unreadable``.
    """
    indexed: list[tuple[dict[str, int], list[Issue]]] = []

    def index(_: int, node: yaml.Node) -> None:  # before construction, which rewrites merge keys
        lines: dict[str, int] = {}
        issues: list[Issue] = []
        _index(node, "", lines, issues)
        indexed.append((lines, issues))

    documents: list[Document] = []
    try:
        for _, _, body in strict.yaml_documents(text, index):
            lines, issues = indexed.pop()
            if body is None:  # an empty document (``---`` twice, a trailing ``---``)
                continue
            documents += _expand(source, len(documents), body, lines, issues)
    except yaml.YAMLError as e:
        if source.endswith(".json"):
            return _parse_json(text, source)
        raise Unreadable(f"{source}: not valid YAML or JSON: {e}") from e
    except ConfigError as e:
        raise Unreadable(f"{source}: {e}") from e
    return documents


def _parse_json(text: str, source: str) -> list[Document]:
    try:
        body, duplicates = strict.parse_json(text, "")
    except ConfigError as e:
        raise Unreadable(f"{source}: {e}") from e
    # a duplicate is a finding, not a failure: the last value wins, as in the API server
    return _expand(
        source, 0, body, {}, [Issue("schema", d, "duplicate key; each key may appear only once") for d in duplicates]
    )
