"""A hostile opaque config cannot stall the kubelet plugin (security acceptance).

``mpsConfig.defaultPinnedDeviceMemoryLimit: "1e999999999"`` used to freeze the plugin: parsing the quantity
computed 10**exponent while holding the GIL, so no other claim, health stream or registration call was
answered. Now the plugin refuses such a claim at once, naming the field, and prepares an unrelated claim
sent at the same moment. The claims are allocated by the real scheduler; the test plays the kubelet over the
plugin's gRPC sockets (the node has no kubelet), so it can time the call.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from api.gen.dra.v1 import api_pb2_grpc as dra_v1
from api.gen.drahealth.v1 import api_pb2 as health_pb
from api.gen.drahealth.v1 import api_pb2_grpc as health_grpc
from api.gen.pluginregistration.v1 import api_pb2 as reg_pb
from api.gen.pluginregistration.v1 import api_pb2_grpc as reg_grpc
from api.partitioning import Whole
from dra_driver.classes import class_name
from dra_driver.k8s import Kube
from dra_driver.kubeletplugin import protocol as proto
from e2e import claims
from e2e.fixtures import Sandbox
from e2e.plugin_node import DRIVER, PluginNode
from e2e.wait import until
from kubelet_plugin.checkpoint import Checkpoint
from sandbox.nodes import register_node

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed")]
R = "/apis/resource.k8s.io/v1"
FIELD = "status.allocation.devices.config[0].opaque.parameters.sharing.mpsConfig.defaultPinnedDeviceMemoryLimit"
# The target is an answer within 1 s (measured and printed below); this bound only tells a freeze from a
# slow machine, so a loaded CI runner does not make the test flaky.
FREEZE_BOUND_S = 10.0


@pytest.fixture
def bare_node(sandbox: Sandbox, kube: Kube) -> Iterator[PluginNode]:
    """A 4x L4 node (whole GPUs) running the plugin, with no kubelet: nothing but the test prepares claims."""
    name = f"hostile-{uuid.uuid4().hex[:6]}"
    api = sandbox.api_client()
    sim = register_node(api, name)
    node = PluginNode.create(name, sandbox.kubeconfig, "l4", Whole())
    try:
        node.start(kube)
        yield node
    finally:
        node.stop()
        sim.stop()
        api.close()
        kube.delete(f"/api/v1/nodes/{name}")
        for s in kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={name}"):
            kube.delete(f"{R}/resourceslices/{s['metadata']['name']}")
        shutil.rmtree(node.root, ignore_errors=True)


def _mps_limit(limit: str) -> dict[str, Any]:
    return {
        "apiVersion": "gpu.dra-driver.dev/v1alpha1",
        "kind": "GpuConfig",
        "sharing": {"strategy": "MPS", "mpsConfig": {"defaultPinnedDeviceMemoryLimit": limit}},
    }


def _claim_and_pod(kube: Kube, ns: str, node: str, name: str, parameters: dict[str, Any] | None = None) -> None:
    """A claim for one whole GPU and a pod on ``node`` using it (no kubelet runs the pod)."""
    devices: dict[str, Any] = {"requests": [{"name": "gpu", "exactly": {"deviceClassName": class_name("gpu")}}]}
    if parameters is not None:
        devices["config"] = [{"requests": ["gpu"], "opaque": {"driver": DRIVER, "parameters": parameters}}]
    kube.create(f"{R}/namespaces/{ns}/resourceclaims", {"metadata": {"name": name}, "spec": {"devices": devices}})
    claims.pod_with_claim(kube, ns, node, name, name)


def _allocated(kube: Kube, ns: str, name: str) -> proto.ClaimRef:
    claim = until(
        lambda: (
            (c := kube.get(f"{R}/namespaces/{ns}/resourceclaims/{name}"))
            and c.get("status", {}).get("reservedFor")
            and c
        ),
        f"claim {name} allocated by the scheduler",
        timeout=90,
    )
    return proto.ClaimRef(ns, claim["metadata"]["uid"], name)


def _timed_prepare(
    node: PluginNode, ref: proto.ClaimRef, start: threading.Barrier
) -> tuple[proto.PrepareResult, float]:
    """NodePrepareResources for ``ref`` on its own connection, sent when every caller is connected."""
    with grpc.insecure_channel(f"unix://{node.dra_socket()}") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = dra_v1.DRAPluginStub(channel)
        start.wait(timeout=10)
        began = time.monotonic()
        try:
            response = stub.NodePrepareResources(proto.prepare_request(proto.DRA_V1, [ref]), timeout=3 * FREEZE_BOUND_S)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
            raise AssertionError(
                f"no answer for claim {ref.name} in {3 * FREEZE_BOUND_S:.0f}s: the plugin froze"
            ) from e
        elapsed = time.monotonic() - began
    return proto.prepare_results_from_pb(response)[ref.uid], elapsed


def _registration_and_health_answer(node: PluginNode) -> None:
    (registration,) = node.registry_dir.glob("*.sock")
    with grpc.insecure_channel(f"unix://{registration}") as channel:
        info = reg_grpc.RegistrationStub(channel).GetInfo(reg_pb.InfoRequest(), timeout=5)
    assert (info.name, info.endpoint) == (DRIVER, str(node.dra_socket()))
    with grpc.insecure_channel(f"unix://{node.dra_socket()}") as channel:
        stream = health_grpc.DRAResourceHealthStub(channel).NodeWatchResources(
            health_pb.NodeWatchResourcesRequest(), timeout=10
        )
        first = next(stream)
        stream.cancel()
    health = {d.device.device_name: d.health for d in first.devices}
    assert health == {f"gpu-{i}": health_pb.HEALTHY for i in range(4)}


def _checkpointed(node: PluginNode) -> dict[str, Any]:
    return dict(Checkpoint.load(node.checkpoint).claims())  # the checkpoint's own reader: slot files


def _specs_of(node: PluginNode, uid: str) -> list[str]:
    return [p.name for p in node.cdi_dir.glob("*.json") if uid in p.name]


@pytest.mark.parametrize("limit", ["1e999999999", "1e10000000", "99999999999999999999Ei"])
def test_a_hostile_quantity_is_refused_at_once_naming_the_field_while_another_claim_is_prepared(
    bare_node: PluginNode, kube: Kube, namespace: str, limit: str
) -> None:
    node = bare_node
    _claim_and_pod(kube, namespace, node.name, "hostile", _mps_limit(limit))
    _claim_and_pod(kube, namespace, node.name, "unrelated")
    hostile, unrelated = _allocated(kube, namespace, "hostile"), _allocated(kube, namespace, "unrelated")

    start = threading.Barrier(2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        hostile_call = pool.submit(_timed_prepare, node, hostile, start)
        unrelated_call = pool.submit(_timed_prepare, node, unrelated, start)
        (refused, hostile_s), (prepared, unrelated_s) = hostile_call.result(), unrelated_call.result()
    print(f"\n{limit!r}: hostile claim answered in {hostile_s:.3f}s, unrelated claim prepared in {unrelated_s:.3f}s")

    assert refused.devices == ()
    assert refused.error == (
        f"invalid configuration: {FIELD}: {limit!r} is out of range: "
        "a quantity from 1 byte to 8Ei - 1 (9223372036854775807), e.g. 10Gi"
    )
    assert hostile_s < FREEZE_BOUND_S, f"the plugin froze on {limit!r} ({hostile_s:.1f}s)"
    assert prepared.error == "" and [d.device for d in prepared.devices] != []
    assert prepared.devices[0].cdi_device_ids and len(_specs_of(node, unrelated.uid)) == 1
    _registration_and_health_answer(node)
    assert node.alive() and node.starts == 1

    # nothing was left for the hostile claim: no spec, no checkpoint entry, no MPS daemon or pipe directory
    assert _specs_of(node, hostile.uid) == []
    assert set(_checkpointed(node)) == {unrelated.uid}
    mps = node.root / "state" / "mps"
    assert not mps.exists() or list(mps.iterdir()) == []

    with grpc.insecure_channel(f"unix://{node.dra_socket()}") as channel:
        stub = dra_v1.DRAPluginStub(channel)
        response = stub.NodeUnprepareResources(proto.unprepare_request(proto.DRA_V1, [hostile, unrelated]), timeout=30)
    assert proto.unprepare_errors_from_pb(response) == {hostile.uid: "", unrelated.uid: ""}
    assert list(node.cdi_dir.glob("*.json")) == [] and _checkpointed(node) == {}
    for pod in ("hostile", "unrelated"):  # no kubelet confirms a graceful deletion
        kube.delete(f"/api/v1/namespaces/{namespace}/pods/{pod}", gracePeriodSeconds="0")
