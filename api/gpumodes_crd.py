"""The NodeGpuModes CustomResourceDefinition, built from the model's own limits and patterns. Pure.

``deploy/crds/nodegpumodes.yaml`` and the chart's ``crds/`` copy are this manifest as YAML
(``tests/api/test_gpumodes_crd.py`` checks both; ``render_yaml()`` writes them); the sandbox installs it from here.
"""

from __future__ import annotations

from typing import Any

import yaml

from api.gpumodes import (
    CRD_NAME,
    KIND,
    MAX_GPUS,
    MAX_MIG_LAYOUT,
    MAX_REASON,
    MODE_PATTERN,
    PLURAL,
    PROFILE_PATTERN,
    SINGULAR,
    STATES,
    UUID_PATTERN,
    VERSION,
)
from api.names import GROUP

HEADER = """\
# NodeGpuModes: desired GPU modes per node (written by the controller) and what the node's kubelet plugin made of
# them (status). One cluster-scoped object per node, named after the node (docs/gpumodes.md).
# Generated from api/gpumodes_crd.py: python -c 'from api.gpumodes_crd import render_yaml; print(render_yaml(), end="")'
"""

_STRING: dict[str, Any] = {"type": "string"}
_GENERATION = {"type": "integer", "format": "int64", "minimum": 0}


def _pattern(pattern: str) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern}


def _layout(min_items: int) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "array", "maxItems": MAX_MIG_LAYOUT, "items": _pattern(PROFILE_PATTERN)}
    if min_items:
        out["minItems"] = min_items
    return out


def _text() -> dict[str, Any]:
    return {"type": "string", "maxLength": MAX_REASON}


def _map_list(key: str, limit: int, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "array",
        "maxItems": limit,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": [key],
        "items": item,
    }


def _spec() -> dict[str, Any]:
    gpu = {
        "type": "object",
        "required": ["uuid", "mode"],
        "properties": {"uuid": _pattern(UUID_PATTERN), "mode": _pattern(MODE_PATTERN), "migLayout": _layout(1)},
        "x-kubernetes-validations": [
            {"rule": "!has(self.migLayout) || self.mode == 'mig'", "message": "migLayout is only valid with mode mig"}
        ],
    }
    return {"type": "object", "properties": {"gpus": _map_list("uuid", MAX_GPUS, gpu)}}


def _status() -> dict[str, Any]:
    time = {"type": "string", "format": "date-time"}
    gpu = {
        "type": "object",
        "required": ["uuid", "mode", "state", "lastTransitionTime"],
        "properties": {
            "uuid": _pattern(UUID_PATTERN),
            "mode": _pattern(MODE_PATTERN),
            "migLayout": _layout(0),
            "state": {"type": "string", "enum": list(STATES)},
            "reason": _text(),
            "lastTransitionTime": time,
        },
    }
    condition = {
        "type": "object",
        "required": ["type", "status", "reason", "lastTransitionTime"],
        "properties": {
            "type": _text(),
            "status": {"type": "string", "enum": ["True", "False"]},
            "reason": _text(),
            "message": _text(),
            "lastTransitionTime": time,
            "observedGeneration": _GENERATION,
        },
    }
    return {
        "type": "object",
        "properties": {
            "observedGeneration": _GENERATION,
            "gpus": _map_list("uuid", MAX_GPUS, gpu),
            "conditions": _map_list("type", 16, condition),
        },
    }


def manifest() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {"kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL, "singular": SINGULAR},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": "Applied",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Applied")].status',
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "properties": {"spec": _spec(), "status": _status()}}
                    },
                }
            ],
        },
    }


def render_yaml() -> str:
    return HEADER + yaml.safe_dump(manifest(), sort_keys=False, width=120)
