"""bench_allocator on a tiny cluster: the JSON keys docs/benchmarks.md lists, the Go input, the build cache key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import alloc_gobuild, bench_allocator
from bench.alloc_inputs import KINDS, clusters, go_input, inventory


def test_json_has_a_time_per_claim_kind_and_node_count(capsys: pytest.CaptureFixture[str]) -> None:
    bench_allocator.main(["--nodes", "1,2", "--repeat", "1", "--json", "--no-go"])
    result = json.loads(capsys.readouterr().out)
    for key in ("alloc_ms", "alloc_cpu_ms", "alloc_warm_ms"):
        assert set(result[key]) == {"whole", "mig", "cel"}
        assert all(set(by_nodes) == {"1", "2"} and min(by_nodes.values()) > 0 for by_nodes in result[key].values())
    assert set(result["per_node_growth"]) == {"whole", "mig", "cel"}
    assert all(g > 0 for g in result["per_node_growth"].values())
    assert result["go_alloc_ms"] is None  # --no-go
    assert result["state_build_devices"] == 2 * 208 and result["state_build_s"] > 0
    assert result["explain_s"] > 0


def test_bad_node_counts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench_allocator.main(["--nodes", "ten"])
    assert "--nodes" in capsys.readouterr().err


def test_the_go_input_names_the_same_nodes_slices_and_claims(tmp_path: Path) -> None:
    data = clusters(inventory(), 3)
    go_input(tmp_path / "in.json", data, [1, 3])
    doc = json.loads((tmp_path / "in.json").read_text())
    assert set(doc["clusters"]) == {"whole", "mig"}
    assert len(doc["clusters"]["mig"]["slices"]) == len(data["mig"].slices) == 3 * data["mig"].per_node
    assert {s["spec"]["nodeName"] for s in doc["clusters"]["mig"]["slices"]} == set(data["mig"].nodes)
    held = doc["clusters"]["mig"]["allocatedClaims"][0]["status"]["allocation"]["devices"]["results"]
    assert len(held) == 3 * 9
    assert [(c["kind"], len(c["nodes"])) for c in doc["cases"]] == [(k.key, n) for k in KINDS for n in (1, 3)]


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the go command (the digest includes go version)")
def test_the_build_is_keyed_by_the_module_files(tmp_path: Path) -> None:
    module = tmp_path / "m"
    shutil.copytree(alloc_gobuild.MODULE, module)
    go = alloc_gobuild._go()
    before = alloc_gobuild.digest(go, module)
    assert alloc_gobuild.digest(go, module) == before
    (module / "main.go").write_text((module / "main.go").read_text() + "\n// changed\n")
    assert alloc_gobuild.digest(go, module) != before
