"""The shipped NodeGpuModes CRD is the one api/gpumodes_crd.py builds, and its patterns accept what the model
accepts (a mode the API server lets through is one the plugin can read)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from api.errors import ConfigError
from api.gpumodes_crd import manifest, render_yaml
from api.partitioning import parse_mode

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [ROOT / "deploy/crds/nodegpumodes.yaml", ROOT / "deploy/helm/dra-driver-gpu/crds/nodegpumodes.yaml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_crd_is_the_generated_one(path: Path) -> None:
    assert path.read_text() == render_yaml(), f"regenerate {path} (see the header of api/gpumodes_crd.py)"
    assert yaml.safe_load(path.read_text()) == manifest()


def _schema(*path: str) -> dict[str, object]:
    node = manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for key in path:
        node = node["properties"][key] if key != "[]" else node["items"]
    return node  # type: ignore[no-any-return]


MODES = [
    "whole",
    "mig",
    "shared",
    "timeslice:2",
    "timeslice:64",
    "timeslice:007",
    "timeslice:1",
    "timeslice:65",
    "timeslice:0",
    "timeslice:",
    "Whole",
    "mig ",
    "timeslice:1000",
    "timeslice:0064",
    "mps",
]


@pytest.mark.parametrize("mode", MODES)
def test_crd_mode_pattern_accepts_exactly_what_parse_mode_accepts(mode: str) -> None:
    pattern = str(_schema("spec", "gpus", "[]", "mode")["pattern"])
    try:
        parse_mode(mode, "mode")
        valid = True
    except ConfigError:
        valid = False
    assert bool(re.fullmatch(pattern, mode)) == valid


def test_status_is_a_subresource_and_the_object_is_cluster_scoped() -> None:
    crd = manifest()
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
