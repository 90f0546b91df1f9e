"""``dra-gpu explain`` without a cluster: what it concludes from API objects, and how it prints it.

The slices are the driver's own (``build_pool`` over a simulated machine); the only fake is a ``Kube`` that
answers GET and LIST from a dict, for reading a pod whose claim a template has not produced yet.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from api.partitioning import GpuMode, Mig, Whole
from cli import explain as explain_cli
from cli import explain_cmd
from controller.explain.analysis import Inputs, analyse, read_inputs
from controller.explain.report import NodeReport, Report, render_json, render_table
from dra_driver.classes import device_classes
from dra_driver.errors import FatalError
from dra_driver.inventory import Inventory
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.render import render
from dra_driver.slices.builder import build_pool
from tests.conftest import MachineFactory

D = "gpu.dra-driver.dev"
Obj = dict[str, Any]


@pytest.fixture
def single_a100(machine: MachineFactory) -> Inventory:
    machine("single-a100", init=False)
    with Nvml() as nvml:
        return discover(nvml)


def node(name: str, **labels: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}}, "spec": {}}


def slices(inv: Inventory, node_name: str, mode: GpuMode) -> list[Obj]:
    pool = build_pool(inv, {g.index: mode for g in inv.gpus}, Capabilities(), D, node_name)
    return render(pool, 1, "v1")


def claim(name: str, device_class: str, count: int = 1, selectors: tuple[str, ...] = ()) -> Obj:
    exactly: Obj = {"deviceClassName": f"{device_class}.dra-driver.dev", "count": count}
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": s}} for s in selectors]
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"devices": {"requests": [{"name": "r", "exactly": exactly}]}},
    }


def holding(c: Obj, node_name: str, *devices: str) -> Obj:
    results = [{"request": "r", "driver": D, "pool": node_name, "device": d} for d in devices]
    return {**c, "status": {"allocation": {"devices": {"results": results}}}}


def inputs(todo: list[Obj], s: list[Obj], nodes: list[Obj], allocated: tuple[Obj, ...] = (), **extra: Any) -> Inputs:
    return Inputs("claim ns/x", tuple(todo), tuple(s), tuple(device_classes()), allocated, tuple(nodes), **extra)


def mig_node_with_4g_and_3g_taken(inv: Inventory) -> Inputs:
    taken = (
        holding(claim("four", "mig-4g-20gb"), "n1", "gpu-0-mig-4g-20gb-0"),
        holding(claim("three", "mig-3g-20gb"), "n1", "gpu-0-mig-3g-20gb-4"),
    )
    return inputs([claim("two", "mig-2g-10gb")], slices(inv, "n1", Mig()), [node("n1")], taken)


def test_a_full_mig_gpu_reports_no_free_placement_and_who_holds_the_counters(single_a100: Inventory) -> None:
    report = analyse(mig_node_with_4g_and_3g_taken(single_a100))
    (n1,) = report.nodes
    assert (n1.node, n1.verdict, n1.message) == ("n1", "unschedulable", "cannot allocate all claims")
    assert n1.fits == ("r: 0 of 1 devices found on n1", "2g.10gb placements free: none")
    assert n1.reasons[-1] == (
        "counter set gpu-0 is used by MIG device(s) gpu-0-mig-3g-20gb-4 (ns/three), gpu-0-mig-4g-20gb-0 (ns/four)"
    )
    assert report.summary == "not allocatable on any of 1 node(s)"


def test_free_placements_of_the_requested_profile_are_listed_per_gpu(single_a100: Inventory) -> None:
    taken = (holding(claim("four", "mig-4g-20gb"), "n1", "gpu-0-mig-4g-20gb-0"),)
    report = analyse(inputs([claim("two", "mig-2g-10gb", 2)], slices(single_a100, "n1", Mig()), [node("n1")], taken))
    (n1,) = report.nodes
    assert n1.verdict == "unschedulable"
    assert n1.fits == ("r: 1 of 2 devices found on n1", "2g.10gb placements free: gpu 0 at 4")
    assert n1.requests[0].free_placements == {"2g.10gb": {0: (4,)}}
    assert n1.requests[0].blocked == {"counters": 2}


def test_the_selector_that_matches_nothing_is_quoted(single_a100: Inventory) -> None:
    h100 = f'device.attributes["{D}"].productName == "NVIDIA H100 80GB HBM3"'
    report = analyse(inputs([claim("h", "gpu", selectors=(h100,))], slices(single_a100, "n1", Whole()), [node("n1")]))
    assert f"request r: selector {h100} matches none of 1 devices" in report.nodes[0].reasons


def test_selectors_that_each_match_but_never_together_are_reported_as_such(single_a100: Inventory) -> None:
    both = (f'device.attributes["{D}"].profile == "7g.40gb"', f'device.attributes["{D}"].placement == 3')
    report = analyse(inputs([claim("x", "mig", selectors=both)], slices(single_a100, "n1", Mig()), [node("n1")]))
    assert "request r: each selector matches some of the 26 devices, none matches all" in report.nodes[0].reasons


def test_a_class_for_a_profile_this_gpu_lacks_is_blamed_on_the_class(single_a100: Inventory) -> None:
    report = analyse(inputs([claim("x", "mig-1g-18gb")], slices(single_a100, "n1", Mig()), [node("n1")]))
    assert any(r.startswith("class mig-1g-18gb.dra-driver.dev: selector ") for r in report.nodes[0].reasons)


def test_an_allocatable_node_shows_the_devices_it_would_take_and_nodes_without_pools_are_skipped(
    single_a100: Inventory,
) -> None:
    report = analyse(inputs([claim("w", "gpu")], slices(single_a100, "n1", Whole()), [node("n1"), node("cpu-only")]))
    assert [(n.node, n.verdict, n.devices) for n in report.nodes] == [("n1", "allocatable", ("ns/w r=gpu-0",))]
    assert report.skipped == 1
    assert report.summary == "allocatable on 1 of 1 node(s)"


def test_without_detail_only_nodes_that_take_the_claim_lose_their_facts_and_the_table_is_the_same(
    single_a100: Inventory,
) -> None:
    taken = (holding(claim("held", "gpu"), "n2", "gpu-0"),)
    every = slices(single_a100, "n1", Whole()) + slices(single_a100, "n2", Whole())
    case = inputs([claim("w", "gpu")], every, [node("n1"), node("n2"), node("cpu-only")], taken)
    full, short = analyse(case), analyse(case, detail=False)
    assert [(n.node, n.verdict) for n in short.nodes] == [("n1", "allocatable"), ("n2", "unschedulable")]
    assert short.skipped == full.skipped == 1
    assert full.nodes[0].requests and not short.nodes[0].requests
    assert short.nodes[1] == full.nodes[1] and short.nodes[0].devices == full.nodes[0].devices
    assert render_table(short) == render_table(full)


def test_a_pod_is_explained_only_on_nodes_it_may_use(single_a100: Inventory) -> None:
    every = slices(single_a100, "n1", Whole()) + slices(single_a100, "n2", Whole()) + slices(single_a100, "n3", Whole())
    cordoned = {**node("n3", pool="a"), "spec": {"unschedulable": True}}
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeSelector": {"pool": "a"}}}
    nodes = [node("n1", pool="a"), node("n2", pool="b"), cordoned]
    report = analyse(inputs([claim("w", "gpu")], every, nodes, pod=pod))
    assert [n.node for n in report.nodes] == ["n1"] and report.skipped == 2


def test_table_aligns_detail_lines_under_their_node() -> None:
    facts = ()
    bad = NodeReport("node-1", "unschedulable", "m", ("why one", "why two"), ("gpu: 1 of 2",), (), facts)
    good = NodeReport("n-2", "allocatable", "", (), (), ("ns/c r=gpu-1",), facts)
    text = render_table(Report("pod ns/p", ("ns/c",), ("note",), (bad, good), 3))
    assert text.splitlines() == [
        "pod ns/p: allocatable on 1 of 2 node(s)",
        "  note",
        "",
        "NODE    RESULT         DETAIL",
        "node-1  unschedulable  why one",
        "                       why two",
        "                       fits: gpu: 1 of 2",
        "n-2     allocatable    ns/c r=gpu-1",
        "(3 other node(s) are not candidates)",
    ]


def test_json_has_the_summary_and_per_request_numbers(single_a100: Inventory) -> None:
    data = json.loads(render_json(analyse(mig_node_with_4g_and_3g_taken(single_a100))))
    assert data["summary"] == "not allocatable on any of 1 node(s)"
    (n1,) = data["nodes"]
    (facts,) = n1["requests"]
    assert {k: facts[k] for k in ("claim", "request", "needed", "matching", "usable")} == {
        "claim": "ns/two",
        "request": "r",
        "needed": 1,
        "matching": 3,
        "usable": 0,
    }
    assert facts["blocked"] == {"counters": 3} and facts["free_placements"] == {"2g.10gb": {}}


class FakeKube:
    """GET and LIST from a dict of path -> object (LIST paths map to item lists)."""

    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects

    def get(self, path: str) -> Obj | None:
        found: Obj | None = self.objects.get(path)
        return found

    def list(self, path: str, **_: str) -> list[Obj]:
        items: list[Obj] = self.objects.get(path, [])
        return items


def test_a_pod_whose_claim_is_not_generated_yet_is_explained_from_its_template(single_a100: Inventory) -> None:
    r = "/apis/resource.k8s.io/v1"
    template = {"spec": {"spec": claim("x", "gpu", 2)["spec"]}}
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"resourceClaims": [{"name": "gpus", "resourceClaimTemplateName": "t"}]},
    }
    kube = FakeKube(
        {
            "/api/v1/namespaces/ns/pods/p": pod,
            f"{r}/namespaces/ns/resourceclaimtemplates/t": template,
            f"{r}/resourceslices": slices(single_a100, "n1", Whole()),
            f"{r}/deviceclasses": device_classes(),
            "/api/v1/nodes": [node("n1")],
        }
    )
    report = analyse(read_inputs(kube, "pod", "p", "ns"))  # type: ignore[arg-type]
    assert report.notes == ("claim gpus is not created yet: explained from template t",)
    assert report.nodes[0].fits == ("r: 1 of 2 devices found on n1",)


def test_an_allocated_claim_is_noted_and_not_explained(single_a100: Inventory) -> None:
    r = "/apis/resource.k8s.io/v1"
    done = holding(claim("w", "gpu"), "n1", "gpu-0")
    kube = FakeKube({f"{r}/namespaces/ns/resourceclaims/w": done, f"{r}/resourceclaims": [done]})
    report = analyse(read_inputs(kube, "claim", "w", "ns"))  # type: ignore[arg-type]
    assert render_table(report).splitlines() == [
        "claim ns/w: nothing to explain: no unallocated claim",
        "  claim ns/w is allocated: r=gpu-0",
    ]


def test_a_missing_claim_fails_with_how_to_list_claims() -> None:
    with pytest.raises(FatalError, match="kubectl get resourceclaims -n ns"):
        read_inputs(FakeKube({}), "claim", "nope", "ns")  # type: ignore[arg-type]


def test_the_sub_command_passes_its_arguments_to_the_implementation(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[argparse.Namespace] = []

    def fake_run(args: argparse.Namespace) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(explain_cli, "run", fake_run)
    parser = argparse.ArgumentParser()
    explain_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["explain", "pod", "trainer", "-n", "team", "-o", "json"])
    assert args.func(args) == 0
    assert (seen[0].kind, seen[0].name, seen[0].namespace, seen[0].output) == ("pod", "trainer", "team", "json")
