"""The slice reconciler against a real API server: publish once, then keep the server equal to the desired pool."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from dra_driver.k8s import Kube, Obj
from dra_driver.resourceslice.backoff import Backoff
from dra_driver.resourceslice.capabilities import CURRENT
from dra_driver.resourceslice.model import (
    Capacity,
    CounterConsumption,
    CounterSet,
    Device,
    Pool,
    RequestPolicy,
    SliceContent,
)
from dra_driver.resourceslice.publisher import SlicePublisher
from dra_driver.resourceslice.reconciler import SliceReconciler
from e2e.fixtures import Sandbox
from e2e.wait import until

pytestmark = pytest.mark.sandbox
SLICES = "/apis/resource.k8s.io/v1/resourceslices"


def _pool(driver: str, node: str, per_slice: tuple[int, ...]) -> Pool:
    slices, index = [], 0
    for count in per_slice:
        devices = tuple(Device(f"dev-{index + i}", (("index", index + i),), ()) for i in range(count))
        slices.append(SliceContent(devices=devices))
        index += count
    return Pool(driver, node, tuple(slices))


@pytest.fixture
def admin(sandbox: Sandbox) -> Iterator[Kube]:
    api = sandbox.api_client()
    yield Kube(api)
    api.close()


@pytest.fixture
def reconciler(sandbox: Sandbox, admin: Kube) -> Iterator[Callable[[], SliceReconciler]]:
    """``make()``: a started reconciler for a fresh (driver, node) with its own client; stopped and cleaned after."""
    made: list[SliceReconciler] = []

    def make() -> SliceReconciler:
        kube = Kube(sandbox.api_client())
        suffix = uuid.uuid4().hex[:6]
        publisher = SlicePublisher(kube, CURRENT, f"rs-{suffix}.example.com", f"node-{suffix}")
        r = SliceReconciler(publisher, backoff=Backoff(0.1, 1.0), watch_timeout_s=30)
        r.start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()
        for s in admin.list(SLICES, fieldSelector=r.publisher.selector):
            admin.delete(f"{SLICES}/{s['metadata']['name']}")
        r.publisher.kube.api_client.close()


def _slices(admin: Kube, r: SliceReconciler) -> dict[str, Obj]:
    return {s["metadata"]["name"]: s for s in admin.list(SLICES, fieldSelector=r.publisher.selector)}


def _devices(slices: dict[str, Obj]) -> list[str]:
    return sorted(d["name"] for s in slices.values() for d in s["spec"].get("devices") or [])


def test_the_desired_pool_is_published_and_setting_it_again_writes_nothing(
    reconciler: Callable[[], SliceReconciler], admin: Kube
) -> None:
    r = reconciler()
    pool = _pool(r.publisher.driver, r.publisher.node, (2, 1))
    r.set_desired(pool)
    until(r.settled, "first publication settled", timeout=20)
    assert _devices(_slices(admin, r)) == ["dev-0", "dev-1", "dev-2"]
    writes, publications = r.publisher.kube.writes(), r.publications
    r.set_desired(_pool(r.publisher.driver, r.publisher.node, (2, 1)))  # equal, not the same object
    assert r.settled() and r.publisher.kube.writes() == writes and r.publications == publications


def test_a_rich_pool_settles_and_a_metadata_only_change_by_someone_else_writes_nothing(
    reconciler: Callable[[], SliceReconciler], admin: Kube
) -> None:
    r = reconciler()
    counters = CounterSet("card-0", (("memory", "40Gi"), ("slice-0", "1"), ("slice-1", "1")))
    whole = Device(
        "card-0",
        (("index", 0), ("model", "x100")),
        (("memory", Capacity("40Gi")),),
        (CounterConsumption("card-0", (("memory", "40Gi"), ("slice-0", "1"), ("slice-1", "1"))),),
    )
    half = Device(
        "card-0-half-1",
        (("index", 0),),
        (("memory", Capacity("20Gi", RequestPolicy(default="1Gi", min="1Gi", step="1Gi", max="20Gi"))),),
        (CounterConsumption("card-0", (("memory", "20Gi"), ("slice-1", "1"))),),
        allow_multiple_allocations=True,
    )
    pool = Pool(
        r.publisher.driver,
        r.publisher.node,
        (SliceContent(counter_sets=(counters,)), SliceContent(devices=(whole, half))),
    )
    r.set_desired(pool)
    until(r.settled, "first publication settled", timeout=20)
    writes, publications = r.publisher.kube.writes(), r.publications
    name = sorted(_slices(admin, r))[1]
    labelled = admin.patch(f"{SLICES}/{name}", {"metadata": {"labels": {"touched": "yes"}}})
    seen = int(labelled["metadata"]["resourceVersion"])  # etcd revisions: the sandbox's are integers
    until(lambda: int(r.watch.version or 0) >= seen, "the label seen by the watch")
    assert r.settled()
    assert (r.publisher.kube.writes(), r.publications) == (writes, publications)


def test_a_slice_deleted_by_someone_else_is_restored(reconciler: Callable[[], SliceReconciler], admin: Kube) -> None:
    r = reconciler()
    r.set_desired(_pool(r.publisher.driver, r.publisher.node, (2, 1)))
    until(r.settled, "first publication settled", timeout=20)
    victim = sorted(_slices(admin, r))[1]
    began = time.monotonic()
    admin.delete(f"{SLICES}/{victim}")
    until(lambda: victim in _slices(admin, r), f"{victim} restored", timeout=15)
    print(f"deleted slice restored after {time.monotonic() - began:.2f}s")
    until(r.settled, "settled again", timeout=10)
    assert _devices(_slices(admin, r)) == ["dev-0", "dev-1", "dev-2"]


def test_a_slice_modified_by_someone_else_is_restored(reconciler: Callable[[], SliceReconciler], admin: Kube) -> None:
    r = reconciler()
    r.set_desired(_pool(r.publisher.driver, r.publisher.node, (2,)))
    until(r.settled, "first publication settled", timeout=20)
    (name, obj) = next(iter(_slices(admin, r).items()))
    obj["spec"]["devices"] = obj["spec"]["devices"][:1]
    admin.replace(f"{SLICES}/{name}", obj)
    until(lambda: _devices(_slices(admin, r)) == ["dev-0", "dev-1"], "dev-1 restored", timeout=15)


def test_a_stranger_slice_in_the_pool_is_removed(reconciler: Callable[[], SliceReconciler], admin: Kube) -> None:
    r = reconciler()
    r.set_desired(_pool(r.publisher.driver, r.publisher.node, (1,)))
    until(r.settled, "first publication settled", timeout=20)
    (obj,) = _slices(admin, r).values()
    stranger = {**obj, "metadata": {"name": f"{obj['metadata']['name']}-stranger"}}
    admin.create(SLICES, stranger)
    until(lambda: len(_slices(admin, r)) == 1, "stranger slice deleted", timeout=15)
    until(r.settled, "settled again", timeout=10)
    assert _devices(_slices(admin, r)) == ["dev-0"]


def test_a_new_desired_pool_replaces_the_published_one(reconciler: Callable[[], SliceReconciler], admin: Kube) -> None:
    r = reconciler()
    r.set_desired(_pool(r.publisher.driver, r.publisher.node, (2, 2)))
    until(r.settled, "first publication settled", timeout=20)
    r.set_desired(_pool(r.publisher.driver, r.publisher.node, (3,)))
    until(lambda: _devices(_slices(admin, r)) == ["dev-0", "dev-1", "dev-2"], "new pool published", timeout=15)
    until(r.settled, "settled", timeout=10)
    generations = {s["spec"]["pool"]["generation"] for s in _slices(admin, r).values()}
    assert generations == {2}


def test_stop_is_prompt_while_the_watch_is_open(reconciler: Callable[[], SliceReconciler]) -> None:
    r = reconciler()
    r.set_desired(_pool(r.publisher.driver, r.publisher.node, (1,)))
    until(r.settled, "first publication settled", timeout=20)
    until(lambda: r.watch.lists >= 1, "watch listed")
    began = time.monotonic()
    r.stop()
    assert time.monotonic() - began < 1.0
    assert not r.running()
