"""Publish a node's pool of ResourceSlices: desired -> actual with the fewest writes.

Rules:
- slices are named ``<node>-<driver>-NN`` (NN = position), owned by the Node;
- nothing changed -> no write at all;
- same slice count and no device moves to another slice -> update only the changed slices in place,
  keeping the pool generation, in an order that keeps every intermediate pool valid: counter slices
  that gain counter sets first, then device slices, then counter slices that lose sets (a device never
  references a counter set that is not there, and no device name is ever in two slices);
- anything else -> write every slice at generation + 1 (side by side, ``WRITERS`` at a time: consumers wait
  for every slice of a generation, so their order does not matter), then delete slices that are no longer
  wanted, so consumers never combine slices of two different pool states.

One ``publish`` is one attempt (a LIST, then the writes); ``reconciler.SliceReconciler`` repeats it
whenever the slices on the server stop matching what was published, with backoff on failures.
``on_write`` (optional) is called with "create", "update" or "delete" after every write request the API server
answered (the kubelet plugin counts them in a metric).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from dra_driver.k8s import Kube, Obj, resource_path
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.model import Pool
from dra_driver.resourceslice.render import render

log = logging.getLogger(__name__)
WRITERS = 4  # slices of a new generation written at once (a dgx-h100 in MIG mode has 5)


@dataclass(frozen=True)
class PublishResult:
    generation: int
    writes: int  # create/update/delete calls made
    slices: dict[str, Obj] = field(default_factory=dict, compare=False)  # name -> spec now published


def _comparable(spec: Obj) -> Any:
    """The part of a slice spec we own; generation is compared separately."""
    return {k: v for k, v in spec.items() if k != "pool"} | {
        "poolName": spec["pool"]["name"],
        "count": spec["pool"]["resourceSliceCount"],
    }


def spec_matches(actual: Obj, published: Obj) -> bool:
    """Is ``actual`` (a slice spec read back) the ``published`` one: same content and same generation?"""
    try:
        same_generation: bool = actual["pool"]["generation"] == published["pool"]["generation"]
        return same_generation and bool(_comparable(actual) == _comparable(published))
    except (KeyError, TypeError):
        return False  # not even shaped like ours


def _device_names(spec: Obj) -> set[str]:
    return {d["name"] for d in spec.get("devices") or []}


def _moves(actual: dict[str, Obj], desired: dict[str, Obj]) -> bool:
    """Would some device change slice? (Then only a new generation keeps the pool consistent.)"""
    where = {d: name for name, obj in actual.items() for d in _device_names(obj["spec"])}
    return any(where.get(d, name) != name for name, obj in desired.items() for d in _device_names(obj["spec"]))


def _write_order(old: Obj, new: Obj) -> int:
    sets_before = {s["name"] for s in old.get("sharedCounters") or []}
    sets_after = {s["name"] for s in new.get("sharedCounters") or []}
    if sets_after - sets_before:
        return 0  # new counter sets exist before devices reference them
    if not sets_after and not sets_before:
        return 1  # device slices
    return 2  # counter sets disappear after their devices


class SlicePublisher:
    def __init__(
        self,
        kube: Kube,
        caps: Capabilities,
        driver: str,
        node: str,
        owner: Obj | None = None,
        on_write: Callable[[str], None] | None = None,
    ) -> None:
        self.kube = kube
        self.caps = caps
        self.driver = driver
        self.node = node
        self.owner = owner
        self.on_write = on_write
        self.base = resource_path(f"resource.k8s.io/{caps.api_version}", "resourceslices")

    @classmethod
    def for_node(
        cls,
        kube: Kube,
        caps: Capabilities,
        driver: str,
        node: str,
        on_write: Callable[[str], None] | None = None,
        node_obj: Obj | None = None,
    ) -> SlicePublisher:
        """A publisher whose slices are owned by the Node object (garbage-collected with it); ``node_obj``: the
        Node as just read (else it is read here; ``{}``: there is none)."""
        obj = kube.get(resource_path("v1", "nodes", node)) if node_obj is None else node_obj or None
        owner = None
        if obj is not None:
            owner = {
                "apiVersion": "v1",
                "kind": "Node",
                "name": node,
                "uid": obj["metadata"]["uid"],
                "controller": True,
            }
        return cls(kube, caps, driver, node, owner, on_write)

    @property
    def selector(self) -> str:
        """The field selector of this node's slices of this driver."""
        return f"spec.nodeName={self.node},spec.driver={self.driver}"

    def slice_path(self, name: str) -> str:
        return resource_path(f"resource.k8s.io/{self.caps.api_version}", "resourceslices", name)

    def existing(self) -> list[Obj]:
        return self.kube.list(self.base, fieldSelector=self.selector)

    def publish(self, pool: Pool) -> PublishResult:
        actual = {s["metadata"]["name"]: s for s in self.existing()}
        generation = max((s["spec"]["pool"]["generation"] for s in actual.values()), default=0)
        desired = {
            o["metadata"]["name"]: o for o in render(pool, max(generation, 1), self.caps.api_version, self.owner)
        }
        specs = {name: obj["spec"] for name, obj in desired.items()}
        changed = [
            name
            for name, obj in desired.items()
            if name not in actual or _comparable(actual[name]["spec"]) != _comparable(obj["spec"])
        ]
        stale_generation = any(s["spec"]["pool"]["generation"] != generation for s in actual.values())
        if not changed and set(actual) == set(desired) and not stale_generation and generation > 0:
            return PublishResult(generation, 0, specs)
        writes = 0
        if generation > 0 and set(actual) == set(desired) and not stale_generation and not _moves(actual, desired):
            for name in sorted(changed, key=lambda n: _write_order(actual[n]["spec"], desired[n]["spec"])):
                writes += self._write(desired[name], actual[name])
            log.info("updated %d slice(s) of %s in place at generation %d", writes, self.node, generation)
            return PublishResult(generation, writes, specs)
        generation += 1
        rendered = render(pool, generation, self.caps.api_version, self.owner)
        writes += self._write_all(rendered, actual)
        for name in sorted(set(actual) - set(desired)):
            self.kube.delete(self.slice_path(name))
            self._written("delete")
            writes += 1
        log.info(
            "published %d slice(s) for %s at generation %d (%d writes)", len(desired), self.node, generation, writes
        )
        return PublishResult(generation, writes, {o["metadata"]["name"]: o["spec"] for o in rendered})

    def _write_all(self, objs: list[Obj], actual: dict[str, Obj]) -> int:
        """Write ``objs`` side by side; the first failure is raised once every write has ended."""
        if len(objs) == 1:
            return self._write(objs[0], actual.get(objs[0]["metadata"]["name"]))
        with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="slice-write") as writers:  # rare: no pool kept
            futures = [writers.submit(self._write, o, actual.get(o["metadata"]["name"])) for o in objs]
            wait(futures)
        return sum(f.result() for f in futures)

    def _write(self, obj: Obj, current: Obj | None) -> int:
        name = obj["metadata"]["name"]
        if current is None:
            self.kube.create(self.base, obj)
        else:
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
            self.kube.replace(self.slice_path(name), obj)
        self._written("create" if current is None else "update")
        return 1

    def _written(self, operation: str) -> None:
        if self.on_write is not None:
            self.on_write(operation)

    def unpublish(self) -> int:
        """Delete all of this node's slices for the driver (plugin uninstall)."""
        count = 0
        for s in self.existing():
            count += int(self.kube.delete(self.slice_path(s["metadata"]["name"])))
            self._written("delete")
        return count
