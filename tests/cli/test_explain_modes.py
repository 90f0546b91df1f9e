"""``dra-gpu explain -f``: the mode changes running (NodeGpuModes spec vs status) and what the mode controller
would do now for the claims explained, from YAML files; table and JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from api import gpumodes
from cli.main import main
from dra_driver.inventory import Inventory
from tests.controller.conftest import Cluster, claim, inventory

__all__ = ["inventory"]  # the fixture, imported for this module's tests

Obj = dict[str, Any]
NOW = "2026-01-01T00:10:00Z"  # ten minutes after every object's creation


def _write(tmp_path: Path, c: Cluster, *extra: Obj) -> Path:
    w = c.world()
    docs: list[Obj] = [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n, "labels": dict(labels)}}
        for n, labels in w.nodes.items()
    ]
    docs += [{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", **s} for s in w.slices]
    docs += [{"apiVersion": "v1", "kind": "Pod", **p} for p in w.pods]
    docs += [{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", **x} for x in w.claims]
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all([*docs, *extra]))
    return path


def _modes(node: str, uuid: str, desired: str, observed: str, state: str, reason: str | None = None) -> Obj:
    status: Obj = {"uuid": uuid, "mode": observed, "state": state, "lastTransitionTime": "2026-01-01T00:05:00Z"}
    if reason:
        status["reason"] = reason
    return {
        "apiVersion": gpumodes.API_VERSION,
        "kind": gpumodes.KIND,
        "metadata": {"name": node, "generation": 2},
        "spec": {"gpus": [{"uuid": uuid, "mode": desired}]},
        "status": {"observedGeneration": 2, "gpus": [status]},
    }


def _explain(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> tuple[Obj, str]:
    base = ["explain", *args, "-f", str(path), "--now", NOW]
    assert main([*base, "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert main(base) == 0
    return data, capsys.readouterr().out


def test_a_pending_claim_on_an_idle_whole_gpu_gets_the_planned_change(
    inventory: Callable[..., Inventory], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    for i in range(3):
        c.pending(f"p{i}", claim(f"c{i}"))
    data, table = _explain(capsys, _write(tmp_path, c), "pod", "p1")
    assert data["modes"]["running"] == []
    assert data["modes"]["plan"] == [
        {"claim": "default/c1", "verdict": "change", "detail": "node-1 gpu-0: whole → timeslice:4 for 3 pending claims"}
    ]
    assert "mode changes in progress (NodeGpuModes spec vs status):\n  none" in table
    assert "  default/c1: change: node-1 gpu-0: whole → timeslice:4 for 3 pending claims" in table
    assert "note: plan made with the controller's default policy" in table


def test_a_change_being_applied_is_shown_with_its_state_and_the_claim_waits_for_it(
    inventory: Callable[..., Inventory], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = inventory("single-a100")
    c = Cluster()
    c.node("node-1", inv)
    c.pending("p0", claim("c0"))
    uuid = inv.gpus[0].uuid
    path = _write(tmp_path, c, _modes("node-1", uuid, "timeslice:4", "whole", "Pending", "waiting for the GPU to idle"))
    data, table = _explain(capsys, path, "claim", "c0")
    assert data["modes"]["running"] == [
        {
            "node": "node-1",
            "uuid": uuid,
            "desired": "timeslice:4",
            "observed": "whole",
            "state": "Pending",
            "reason": "waiting for the GPU to idle",
            "since": "2026-01-01T00:05:00Z",
        }
    ]
    (plan,) = data["modes"]["plan"]
    assert (plan["claim"], plan["verdict"]) == ("default/c0", "waiting")
    assert plan["detail"].startswith("for the change in progress: ")
    assert f"node-1 {uuid}: whole → timeslice:4 Pending since 2026-01-01T00:05:00Z: waiting" in table


def test_a_refused_change_shows_its_reason_and_a_claim_without_pending_pod_is_not_acted_for(
    inventory: Callable[..., Inventory], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = inventory("single-a100")
    c = Cluster()
    c.node("node-1", inv)
    c.claims.append(claim("lonely"))
    refused = _modes("node-1", inv.gpus[0].uuid, "mig", "whole", "ResetRequired", "MIG mode needs a GPU reset")
    data, _ = _explain(capsys, _write(tmp_path, c, refused), "claim", "lonely")
    ((row,), (plan,)) = data["modes"]["running"], data["modes"]["plan"]
    assert (row["desired"], row["observed"], row["state"]) == ("mig", "whole", "ResetRequired")
    assert row["reason"] == "MIG mode needs a GPU reset"
    assert (plan["verdict"], plan["detail"]) == (
        "not-pending",
        "no pending pod waits for it (the controller acts only for claims of pods not yet scheduled)",
    )


def test_an_applied_change_is_not_running_and_a_node_not_opted_in_is_the_reason_given(
    inventory: Callable[..., Inventory], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = inventory("single-a100")
    c = Cluster()
    c.node("node-1", inv, opted_in=False)
    c.pending("p0", claim("c0"))
    applied = _modes("node-1", inv.gpus[0].uuid, "whole", "whole", "Applied")
    data, _ = _explain(capsys, _write(tmp_path, c, applied), "pod", "p0")
    assert data["modes"]["running"] == []
    assert [(p["verdict"], p["detail"].rsplit("[", 1)[-1]) for p in data["modes"]["plan"]] == [
        ("cannot-help", "node-not-opted-in]")
    ]


def test_an_unreadable_node_gpu_modes_object_is_named_not_fatal(
    inventory: Callable[..., Inventory], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    c.pending("p0", claim("c0"))
    bad = {"apiVersion": gpumodes.API_VERSION, "kind": gpumodes.KIND, "metadata": {"name": "node-1"}}
    bad["spec"] = {"gpus": [{"uuid": "not-a-uuid", "mode": "whole"}]}
    data, _ = _explain(capsys, _write(tmp_path, c, bad), "claim", "c0")
    (note, *_) = data["modes"]["notes"]
    assert note.startswith("NodeGpuModes node-1: ") and "spec.gpus[0].uuid" in note


def test_explain_from_files_rejects_kinds_it_does_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("kind: ConfigMap\nmetadata: {name: x}\n")
    assert main(["explain", "claim", "x", "-f", str(path)]) == 2
    assert "document 1: kind 'ConfigMap' is not one of Node, Pod" in capsys.readouterr().err
    path.write_text("")
    assert main(["explain", "claim", "x", "-f", str(path), "--now", "yesterday"]) == 2
    assert "--now: 'yesterday' is not an RFC 3339 time" in capsys.readouterr().err
