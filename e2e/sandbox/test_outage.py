"""An API-server outage, the worst kind: kube-apiserver frozen (SIGSTOP), so connections hang instead of failing.

Acceptance: with the API server stopped for 60 s while the kubelet keeps calling NodePrepareResources, every
prepare is answered within the kubelet's 45 s deadline (with a per-claim error); after the API server is
back, the node's slices are republished within 15 s: a GPU lost during the outage disappears from them,
and a slice deleted right after the return is restored. The measured times are printed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from api.gen.dra.v1 import api_pb2_grpc as dra_v1
from api.partitioning import Whole
from dra_driver.k8s import ApiError, Kube
from dra_driver.kubeletplugin import protocol as proto
from dra_driver.kubeletplugin.protocol import ClaimRef
from e2e.fixtures import Sandbox, running_sandbox
from e2e.plugin_node import DRIVER, PluginNode
from e2e.wait import until

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
SLICES = "/apis/resource.k8s.io/v1/resourceslices"
OUTAGE_S = 60.0
KUBELET_DEADLINE_S = 45.0
REPUBLISH_BUDGET_S = 15.0
CALLERS = 3  # concurrent kubelet calls, each with two claims


@pytest.fixture(scope="module")
def private_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of our own (no nodes, no agents): this module freezes its API server."""
    with running_sandbox(tmp_path_factory.mktemp("outage"), nodes=0) as sandbox:
        yield sandbox


@pytest.fixture
def plugin(private_sandbox: Sandbox) -> Iterator[tuple[PluginNode, Kube]]:
    api = private_sandbox.api_client()
    kube = Kube(api)
    node = PluginNode.create(f"outage-{uuid.uuid4().hex[:6]}", private_sandbox.kubeconfig, "dgx-a100", Whole())
    try:
        node.start(kube)
        yield node, kube
    finally:
        node.stop()
        api.close()
        shutil.rmtree(node.root, ignore_errors=True)


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _apiserver_pid(sandbox: Sandbox) -> int:
    return next(p.pid for p in sandbox.status.processes if p.name == "kube-apiserver")


def _devices(kube: Kube, node: str) -> dict[str, set[str]]:
    """Slice name -> its device names, of the node's slices of the driver."""
    selector = f"spec.nodeName={node},spec.driver={DRIVER}"
    return {
        s["metadata"]["name"]: {d["name"] for d in s["spec"].get("devices") or []}
        for s in kube.list(SLICES, fieldSelector=selector)
    }


def _answers(kube: Kube) -> bool:
    try:
        kube.get("/api/v1/namespaces/default")
    except ApiError:
        return False
    return True


def _prepare_until(socket: Path, last_start: float) -> list[tuple[float, float, dict[str, proto.PrepareResult]]]:
    """Prepare calls back to back, as a retrying kubelet makes them, until ``last_start``; returns
    (answered at, seconds to answer, results) of each."""
    answered = []
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        stub = dra_v1.DRAPluginStub(channel)
        while time.monotonic() < last_start:
            claims = [ClaimRef("outage", str(uuid.uuid4()), f"claim-{i}") for i in range(2)]
            began = time.monotonic()
            response = stub.NodePrepareResources(proto.prepare_request(proto.DRA_V1, claims), timeout=90)
            now = time.monotonic()
            answered.append((now, now - began, proto.prepare_results_from_pb(response)))
    return answered


def test_prepares_answer_within_the_kubelet_deadline_and_slices_return_soon_after_an_api_outage(
    private_sandbox: Sandbox, plugin: tuple[PluginNode, Kube]
) -> None:
    node, kube = plugin
    assert any("gpu-3" in devices for devices in _devices(kube, node.name).values())

    with ThreadPoolExecutor(CALLERS) as pool, frozen(_apiserver_pid(private_sandbox)):
        stopped_at = time.monotonic()
        node.machine.set_fault(3, "lost")  # the next re-scan wants a different pool: publication has to wait
        calls = [pool.submit(_prepare_until, node.dra_socket(), stopped_at + OUTAGE_S - 5) for _ in range(CALLERS)]
        time.sleep(stopped_at + OUTAGE_S - time.monotonic())  # the outage itself: a duration, not a condition
    resumed_at = time.monotonic()
    answers = [a for c in calls for a in c.result()]

    slowest = max(seconds for _, seconds, _ in answers)
    print(f"\nAPI server frozen {resumed_at - stopped_at:.1f}s; {len(answers)} prepare calls, slowest {slowest:.1f}s")
    assert slowest < KUBELET_DEADLINE_S
    assert all(r.error for _, _, results in answers for r in results.values()), "no claim can be prepared"
    during = [r.error for at, _, results in answers if at < resumed_at for r in results.values()]
    assert len(during) >= 2 * CALLERS and all("API server" in e for e in during), during[:3]
    print(f"per-claim error during the outage: {during[0]}")

    until(lambda: _answers(kube), "the API server answering again", timeout=REPUBLISH_BUDGET_S)
    until(
        lambda: not any("gpu-3" in devices for devices in _devices(kube, node.name).values()),
        "the GPU lost during the outage unpublished",
        timeout=REPUBLISH_BUDGET_S - (time.monotonic() - resumed_at),
    )
    print(f"republished without the lost GPU {time.monotonic() - resumed_at:.1f}s after the API server returned")

    victim = sorted(_devices(kube, node.name))[0]
    deleted_at = time.monotonic()
    kube.delete(f"{SLICES}/{victim}")
    until(
        lambda: victim in _devices(kube, node.name),
        f"slice {victim} restored",
        timeout=REPUBLISH_BUDGET_S - (deleted_at - resumed_at),
    )
    restored_at = time.monotonic()
    print(
        f"deleted slice restored {restored_at - deleted_at:.1f}s after the deletion, "
        f"{restored_at - resumed_at:.1f}s after the API server returned"
    )
    assert restored_at - resumed_at < REPUBLISH_BUDGET_S
    assert node.alive()
