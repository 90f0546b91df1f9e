"""What the linter reports: one ``Finding`` per problem, located by file, document and field path. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

Check: TypeAlias = Literal["schema", "cel", "config", "reference", "feasibility"]
CHECKS: tuple[Check, ...] = ("schema", "cel", "config", "reference", "feasibility")


@dataclass(frozen=True)
class Issue:
    """A problem at a field path of one object, before it is placed in a file."""

    check: Check
    field: str  # e.g. spec.devices.requests[0].exactly.count; "" for the object as a whole
    message: str


@dataclass(frozen=True)
class Finding:
    source: str  # file name as given
    document: int  # 0-based position in the file (after expanding kind: List)
    line: int | None  # 1-based line of the field (or of the nearest enclosing field), if known
    kind: str
    name: str
    check: Check
    field: str
    message: str

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}" if self.line else f"{self.source}#{self.document}"

    @property
    def object(self) -> str:
        return f"{self.kind}/{self.name or '<unnamed>'}" if self.kind else f"document {self.document}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "document": self.document,
            "line": self.line,
            "kind": self.kind,
            "name": self.name,
            "check": self.check,
            "field": self.field,
            "message": self.message,
        }

    def __str__(self) -> str:
        at = f"{self.field}: " if self.field else ""
        return f"{self.location}: {self.object}: {at}{self.message} [{self.check}]"
