"""``dra-gpu plan -f`` on YAML files: the controller's decision, as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from cli.main import main
from dra_driver.inventory import Inventory
from tests.controller.conftest import Cluster, claim


def _files(tmp_path: Path, c: Cluster) -> Path:
    w = c.world()
    docs = [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n, "labels": dict(labels)}}
        for n, labels in w.nodes.items()
    ]
    docs += [{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", **s} for s in w.slices]
    docs += [{"apiVersion": "v1", "kind": "Pod", **p} for p in w.pods]
    docs += [{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", **x} for x in w.claims]
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_plan_prints_the_change_and_its_claims_as_json(
    inventory: Callable[..., Inventory], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    for i in range(3):
        c.pending(f"p{i}", claim(f"c{i}"))
    path = _files(tmp_path, c)
    assert main(["plan", "-f", str(path), "--now", "2026-01-01T00:10:00Z", "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [x["message"] for x in out["changes"]] == ["node-1 gpu-0: whole → timeslice:4 for 3 pending claims"]
    assert out["notes"] == ["no DeviceClasses given: using the driver's shipped classes"]
    assert main(["plan", "-f", str(path), "--now", "2026-01-01T00:10:00Z"]) == 0
    table = capsys.readouterr().out
    assert "timeslice:4" in table and "change: node-1 gpu-0: whole → timeslice:4" in table


def test_plan_rejects_objects_it_does_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("kind: ConfigMap\nmetadata: {name: x}\n")
    assert main(["plan", "-f", str(path)]) == 2
    assert "kind 'ConfigMap' is not one of" in capsys.readouterr().err
