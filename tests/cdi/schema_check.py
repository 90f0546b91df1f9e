"""Validate a rendered CDI spec against the CDI project's JSON schema and its Go field names (tests only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")
from referencing.jsonschema import DRAFT7  # noqa: E402

_DIR = Path(__file__).parent / "schema"

# The JSON keys of specs-go/config.go (v1.1.0): loaders reject any other key; the schema does not.
_EDITS = {"env", "deviceNodes", "netDevices", "hooks", "mounts", "intelRdt", "additionalGids"}
_FIELDS = {
    "spec": {"cdiVersion", "kind", "annotations", "devices", "containerEdits"},
    "device": {"name", "annotations", "containerEdits"},
    "deviceNodes": {"path", "hostPath", "type", "major", "minor", "fileMode", "permissions", "uid", "gid"},
    "mounts": {"hostPath", "containerPath", "options", "type"},
    "hooks": {"hookName", "path", "args", "env", "timeout"},
}


def _validator() -> Any:
    schema = json.loads((_DIR / "schema.json").read_text())
    defs = referencing.Resource.from_contents(
        json.loads((_DIR / "defs.json").read_text()), default_specification=DRAFT7
    )
    registry = referencing.Registry().with_resource("defs.json", defs)
    return jsonschema.Draft7Validator(schema, registry=registry)


def _unknown_keys(doc: dict[str, Any]) -> list[str]:
    problems = [f"spec.{k}" for k in doc if k not in _FIELDS["spec"]]
    edits = [("containerEdits", doc.get("containerEdits", {}))]
    for i, device in enumerate(doc.get("devices", [])):
        problems += [f"devices[{i}].{k}" for k in device if k not in _FIELDS["device"]]
        edits.append((f"devices[{i}].containerEdits", device.get("containerEdits", {})))
    for at, edit in edits:
        problems += [f"{at}.{k}" for k in edit if k not in _EDITS]
        for key in ("deviceNodes", "mounts", "hooks"):
            for j, item in enumerate(edit.get(key, [])):
                problems += [f"{at}.{key}[{j}].{k}" for k in item if k not in _FIELDS[key]]
    return problems


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """Every way ``doc`` breaks the CDI schema or uses a key the CDI Go types lack; empty when valid."""
    found = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in _validator().iter_errors(doc)]
    return found + [f"{key}: unknown field" for key in _unknown_keys(doc)]
