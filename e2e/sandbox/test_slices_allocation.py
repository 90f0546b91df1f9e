"""Published slices, read back from the real API server and allocated by the real kube-scheduler."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from api.partitioning import GpuMode, Mig, Shared, TimeSlice, Whole
from dra_driver.classes import class_name
from dra_driver.inventory import Inventory
from dra_driver.k8s import Kube
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.probe import probe
from dra_driver.resourceslice.publisher import SlicePublisher
from dra_driver.resourceslice.render import render
from dra_driver.slices.builder import build_pool
from e2e import claims
from e2e.conftest import SimNode
from e2e.testplugin import TestPlugin
from e2e.wait import until
from nvml_sim.hardware import MACHINE_PROFILES

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed")]
DRIVER = "gpu.dra-driver.dev"
MODES: list[GpuMode] = [Whole(), Mig(), TimeSlice(4), Shared()]


@pytest.fixture(scope="module")
def caps(kube: Kube) -> Capabilities:
    return probe(kube)


@pytest.fixture
def gpu_node(
    sim_node: Callable[..., SimNode], inventory: Callable[[str], Inventory], kube: Kube, caps: Capabilities
) -> Iterator[Callable[..., tuple[SimNode, SlicePublisher, Inventory]]]:
    plugins: list[TestPlugin] = []

    def make(profile: str, mode: GpuMode) -> tuple[SimNode, SlicePublisher, Inventory]:
        node = sim_node(profile)
        inv = inventory(profile)
        publisher = SlicePublisher.for_node(kube, caps, DRIVER, node.name)
        publisher.publish(build_pool(inv, {g.index: mode for g in inv.gpus}, caps, DRIVER, node.name))
        plugins.append(TestPlugin(DRIVER, node.kubelet.registry_dir, node.kubelet.plugins_dir).start())
        return node, publisher, inv

    yield make
    for p in plugins:
        p.stop()


@pytest.mark.parametrize("profile", sorted(MACHINE_PROFILES))
def test_published_slices_read_back_unchanged_for_every_profile_and_mode(
    gpu_node: Callable[..., tuple[SimNode, SlicePublisher, Inventory]], caps: Capabilities, profile: str
) -> None:
    node, publisher, inv = gpu_node(profile, Whole())
    for mode in MODES:
        pool = build_pool(inv, {g.index: mode for g in inv.gpus}, caps, DRIVER, node.name)
        result = publisher.publish(pool)
        want = {o["metadata"]["name"]: o for o in render(pool, result.generation, caps.api_version, publisher.owner)}
        got = {o["metadata"]["name"]: o for o in publisher.existing()}
        assert set(got) == set(want), mode
        for name, obj in want.items():
            assert got[name]["spec"] == obj["spec"], f"{mode}: {name} changed by the server"
            assert got[name]["metadata"]["ownerReferences"][0]["name"] == node.name


def _wait_allocated(kube: Kube, ns: str, pods: list[str]) -> dict[str, list[str]]:
    return until(
        lambda: (a := {p: claims.allocated_devices(kube, ns, p) for p in pods}) and all(a.values()) and a,
        f"claims of {len(pods)} pod(s) allocated",
        timeout=90,
    )  # type: ignore[return-value]


def _stays_pending(kube: Kube, ns: str, pod: str, seconds: float = 6.0) -> bool:
    until(lambda: claims.is_unschedulable(kube, ns, pod), f"{pod} unschedulable")
    time.sleep(seconds)
    return claims.allocated_devices(kube, ns, pod) is None and claims.is_unschedulable(kube, ns, pod)


def test_seven_1g_claims_take_disjoint_placements_and_an_eighth_waits(
    gpu_node: Callable[..., tuple[SimNode, SlicePublisher, Inventory]], kube: Kube, namespace: str
) -> None:
    node, _, _ = gpu_node("single-a100", Mig())
    t = claims.template(kube, namespace, class_name("mig-1g-5gb"))
    pods = [claims.pod(kube, namespace, node.name, t) for _ in range(7)]
    allocated = _wait_allocated(kube, namespace, pods)
    devices = sorted(d for ds in allocated.values() for d in ds)
    assert devices == sorted(f"gpu-0-mig-1g-5gb-{s}" for s in range(7))
    eighth = claims.pod(kube, namespace, node.name, t)
    assert _stays_pending(kube, namespace, eighth)


def test_whole_gpu_waits_while_a_mig_device_is_allocated_and_gets_it_after(
    gpu_node: Callable[..., tuple[SimNode, SlicePublisher, Inventory]], kube: Kube, namespace: str
) -> None:
    node, _, _ = gpu_node("single-a100", Mig())
    small = claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("mig-2g-10gb")))
    _wait_allocated(kube, namespace, [small])
    whole = claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name("gpu")))
    assert _stays_pending(kube, namespace, whole)
    kube.delete(f"/api/v1/namespaces/{namespace}/pods/{small}")
    assert _wait_allocated(kube, namespace, [whole])[whole] == ["gpu-0"]


def test_3g_and_4g_fit_together_but_two_4g_do_not(
    gpu_node: Callable[..., tuple[SimNode, SlicePublisher, Inventory]], kube: Kube, namespace: str
) -> None:
    node, _, _ = gpu_node("single-a100", Mig())
    four = claims.template(kube, namespace, class_name("mig-4g-20gb"))
    three = claims.template(kube, namespace, class_name("mig-3g-20gb"))
    a = claims.pod(kube, namespace, node.name, four)
    b = claims.pod(kube, namespace, node.name, three)
    allocated = _wait_allocated(kube, namespace, [a, b])
    assert allocated == {a: ["gpu-0-mig-4g-20gb-0"], b: ["gpu-0-mig-3g-20gb-4"]}
    second_four = claims.pod(kube, namespace, node.name, four)
    assert _stays_pending(kube, namespace, second_four)


def test_four_timeslice_replicas_allocate_and_a_fifth_waits(
    gpu_node: Callable[..., tuple[SimNode, SlicePublisher, Inventory]], kube: Kube, namespace: str
) -> None:
    node, _, _ = gpu_node("single-a100", TimeSlice(4))
    t = claims.template(kube, namespace, class_name("timeslice"))
    pods = [claims.pod(kube, namespace, node.name, t) for _ in range(4)]
    devices = sorted(d for ds in _wait_allocated(kube, namespace, pods).values() for d in ds)
    assert devices == [f"gpu-0-ts-{k}" for k in range(4)]
    assert _stays_pending(kube, namespace, claims.pod(kube, namespace, node.name, t))


def test_cel_selector_on_product_name_and_memory_picks_the_right_gpu(
    gpu_node: Callable[..., tuple[SimNode, SlicePublisher, Inventory]], kube: Kube, namespace: str
) -> None:
    node, _, inv = gpu_node("a100-80gb-a30", Whole())
    a30 = claims.template(
        kube, namespace, class_name("gpu"), [f'device.attributes["{DRIVER}"].productName == "NVIDIA A30"']
    )
    big = claims.template(
        kube, namespace, class_name("gpu"), [f'device.capacity["{DRIVER}"].memory.compareTo(quantity("70Gi")) >= 0']
    )
    p1 = claims.pod(kube, namespace, node.name, a30)
    p2 = claims.pod(kube, namespace, node.name, big)
    allocated = _wait_allocated(kube, namespace, [p1, p2])
    by_name = {f"gpu-{g.minor}": g.product_name for g in inv.gpus}
    assert by_name[allocated[p1][0]] == "NVIDIA A30"
    assert by_name[allocated[p2][0]] == "NVIDIA A100-SXM4-80GB"


def test_republishing_is_free_and_one_changed_gpu_rewrites_only_its_slice(
    gpu_node: Callable[..., tuple[SimNode, SlicePublisher, Inventory]], kube: Kube, caps: Capabilities
) -> None:
    node, publisher, inv = gpu_node("dgx-a100", Mig())
    modes: dict[int, GpuMode] = {g.index: Mig() for g in inv.gpus}
    pool = build_pool(inv, modes, caps, DRIVER, node.name)
    before = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in publisher.existing()}
    kube.calls.clear()
    assert publisher.publish(pool).writes == 0
    assert kube.writes() == 0
    changed = build_pool(inv, {**modes, 7: Whole()}, caps, DRIVER, node.name)
    result = publisher.publish(changed)
    after = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in publisher.existing()}
    rewritten = sorted(n for n in after if after[n] != before.get(n))
    assert result.writes == len(rewritten) + len(set(before) - set(after))
    assert result.writes == 2  # GPU 7's counter set leaves the counter slice; its devices change in their slice
    assert result.generation == 1 and set(after) == set(before)


def test_a_1_37_sandbox_has_every_capability(caps: Capabilities) -> None:
    assert caps == Capabilities(
        api_version="v1",
        partitionable_devices=True,
        counters_in_own_slice=True,
        device_taints=True,
        consumable_capacity=True,
        extended_resource_name=True,
    )
    assert caps.describe() == []


def test_a_shared_gpu_takes_several_claims_until_its_compute_is_used_up(
    gpu_node: Callable[..., tuple[SimNode, SlicePublisher, Inventory]], kube: Kube, namespace: str
) -> None:
    node, _, _ = gpu_node("single-a100", Shared())
    t = claims.template(kube, namespace, class_name("shared"))  # default request: 10 % compute, 1Gi
    pods = [claims.pod(kube, namespace, node.name, t) for _ in range(3)]
    allocated = _wait_allocated(kube, namespace, pods)
    assert all(devices == ["gpu-0-shared"] for devices in allocated.values())
    share_ids = {
        claims.claim_of(kube, namespace, p)["status"]["allocation"]["devices"]["results"][0]["shareID"]  # type: ignore[index]
        for p in pods
    }
    assert len(share_ids) == 3
