"""The controller's ``/explain``: the answer ``dra-gpu explain`` gives for the same objects, read from the
watch cache (the API server only for what the cache does not hold), slices parsed once across questions and
decisions; bad questions get a clear status and message."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cli.explain_files import FileKube
from controller.cache import ClusterCache
from controller.explain.analysis import answer, read_inputs
from controller.explainer import Explainer
from controller.planner import Policy
from controller.planner.view import ViewMemo
from dra_driver.classes import device_classes
from dra_driver.inventory import Inventory
from dra_driver.structured.slicememo import ParsedSlices
from tests.controller.conftest import DRIVER, T0_S, Cluster, claim

Obj = dict[str, Any]
NOW = T0_S + 600


class Api:
    """The API server's reads, recorded: the explainer must reach for it only for what the cache lacks."""

    def __init__(self, objects: dict[str, Obj] | None = None) -> None:
        self.objects = objects or {}
        self.reads: list[str] = []

    def get(self, path: str) -> Obj | None:
        self.reads.append(f"GET {path}")
        return self.objects.get(path)

    def list(self, path: str, **query: str) -> list[Any]:
        self.reads.append(f"LIST {path}")
        return []


def _cluster(inventory: Callable[..., Inventory]) -> Cluster:
    c = Cluster()
    c.node("node-1", inventory("single-a100"))
    for i in range(3):
        c.pending(f"p{i}", claim(f"c{i}"))
    return c


def _objects(c: Cluster) -> dict[str, list[Obj]]:
    w = c.world()
    slices = [
        {**s, "metadata": {**s["metadata"], "uid": f"u-{i}", "resourceVersion": "7"}} for i, s in enumerate(w.slices)
    ]
    nodes = [{"metadata": {"name": n, "labels": dict(labels)}} for n, labels in w.nodes.items()]
    return {
        "nodes": nodes, "pods": list(w.pods), "claims": list(w.claims), "slices": slices,
        "classes": device_classes(DRIVER, c.caps), "modes": [],
    }  # fmt: skip


def _explainer(objects: dict[str, list[Obj]], api: Api, listed: bool = True) -> tuple[Explainer, ParsedSlices]:
    cache = ClusterCache(api, lambda: None)  # type: ignore[arg-type]  # watches never started: filled below
    if listed:
        for kind, items in objects.items():
            cache.collections[kind]._listed(items)
    parsed = ParsedSlices()
    views = ViewMemo()
    explainer = Explainer(cache, api, Policy(), Cluster().caps, DRIVER, parsed, views, clock=lambda: NOW)  # type: ignore[arg-type]
    return explainer, parsed


def _files(objects: dict[str, list[Obj]]) -> FileKube:
    kinds = {
        "nodes": "Node",
        "pods": "Pod",
        "claims": "ResourceClaim",
        "slices": "ResourceSlice",
        "classes": "DeviceClass",
    }
    return FileKube([{"kind": kinds[k], **o} for k, items in objects.items() if k in kinds for o in items])


def test_the_answer_is_the_clis_for_the_same_objects_from_the_cache_alone(
    inventory: Callable[..., Inventory],
) -> None:
    objects = _objects(_cluster(inventory))
    api = Api()
    explainer, parsed = _explainer(objects, api)
    for output in ("json", "table"):
        code, body, content_type = explainer.route(f"/explain/pod/default/p1?output={output}")
        assert code == 200, body
        expected = answer(
            read_inputs(_files(objects), "pod", "p1", "default"), None, Cluster().caps, DRIVER, NOW, output
        )
        if output == "json":
            assert content_type == "application/json"
            mine, cli = json.loads(body), json.loads(expected)
            assert mine["modes"]["plan"] == cli["modes"]["plan"] != []
            mine["modes"]["notes"] = cli["modes"]["notes"] = []  # the CLI's says it used the default policy
            assert mine == cli
        else:
            cli_lines = [line for line in expected.splitlines() if "default policy" not in line]
            assert body.decode().splitlines() == cli_lines
    assert api.reads == []  # every read came from the cache
    assert parsed.parses == len(objects["slices"])  # parsed once for both questions


def test_what_the_cache_lacks_is_read_from_the_api_server(inventory: Callable[..., Inventory]) -> None:
    objects = _objects(_cluster(inventory))
    api = Api()
    explainer, _ = _explainer(objects, api)
    code, body, _ = explainer.route("/explain/claim/default/not-yet")
    assert (code, body.decode()) == (
        404,
        "claim default/not-yet not found; list them with: kubectl get resourceclaims -n default\n",
    )
    assert api.reads == ["GET /apis/resource.k8s.io/v1/namespaces/default/resourceclaims/not-yet"]


def test_bad_questions_get_a_status_and_what_would_be_valid(inventory: Callable[..., Inventory]) -> None:
    objects = _objects(_cluster(inventory))
    explainer, _ = _explainer(objects, Api())
    assert explainer.route("/explain/node/default/x")[:2] == (
        404,
        b"not found: ask GET /explain/(claim|pod)/NAMESPACE/NAME?output=table|json\n",
    )
    assert explainer.route("/explain/pod/default/p1?output=yaml")[:2] == (
        400,
        b"output: 'yaml' is not one of table, json\n",
    )
    unsynced, _ = _explainer(objects, Api(), listed=False)
    code, body, _ = unsynced.route("/explain/pod/default/p1")
    assert code == 503 and body.startswith(
        b"the controller is still listing claims, classes, modes, nodes, pods, slices"
    )


def test_slices_the_cluster_dropped_are_forgotten_after_the_next_answer(inventory: Callable[..., Inventory]) -> None:
    objects = _objects(_cluster(inventory))
    explainer, parsed = _explainer(objects, Api())
    assert explainer.route("/explain/pod/default/p1")[0] == 200
    kept = parsed.size
    gone = objects["slices"][-1]
    explainer.cache.collections["slices"]._event("DELETED", gone)
    assert explainer.route("/explain/pod/default/p1")[0] == 200
    assert parsed.size == kept - 1
