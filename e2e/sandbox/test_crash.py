"""Crash-only plugin: SIGKILL at random points over hundreds of MIG prepare/unprepare calls never leaks.

The test plays the kubelet: it calls the plugin's DRA socket directly (the node has no simulated
kubelet, so nothing else prepares), kills the plugin at a random moment in every life, restarts it,
and after every start-up repair checks:
- every MIG partition on the (simulated) GPU is owned by a prepared claim in the checkpoint;
- every CDI spec file belongs to a prepared claim;
- every claim whose last acknowledged call was a prepare is still prepared, with its partition and spec.
"""

from __future__ import annotations

import os
import random
import threading

import grpc
import pytest

from api.gen.dra.v1 import api_pb2_grpc
from api.partitioning import Mig
from dra_driver.classes import class_name
from dra_driver.k8s import Kube
from dra_driver.kubeletplugin import protocol as proto
from e2e.fixtures import Sandbox
from e2e.plugin_node import PluginNode
from e2e.wait import until
from kubelet_plugin.checkpoint import Checkpoint, MigPartition
from sandbox.nodes import register_node

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.usefixtures("device_classes_installed")]
R = "/apis/resource.k8s.io/v1"
MIN_CALLS = 200
MIN_KILLS = 30
CLAIMS = ("mig-1g-5gb",) * 4 + ("mig-2g-10gb",)


def _allocated_claims(kube: Kube, ns: str, node: str) -> list[proto.ClaimRef]:
    refs = []
    for i, cls in enumerate(CLAIMS):
        name = f"c{i}"
        kube.create(
            f"{R}/namespaces/{ns}/resourceclaims",
            {
                "metadata": {"name": name},
                "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": class_name(cls)}}]}},
            },
        )
        kube.create(
            f"/api/v1/namespaces/{ns}/pods",
            {
                "metadata": {"name": f"p{i}"},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [
                        {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"claims": [{"name": "gpu"}]}}
                    ],
                    "resourceClaims": [{"name": "gpu", "resourceClaimName": name}],
                },
            },
        )
    for i in range(len(CLAIMS)):
        claim = until(
            lambda i=i: (
                (c := kube.get(f"{R}/namespaces/{ns}/resourceclaims/c{i}"))  # type: ignore[misc]
                and c.get("status", {}).get("reservedFor")
                and c
            ),
            f"claim c{i} allocated",
            timeout=90,
        )
        refs.append(proto.ClaimRef(ns, claim["metadata"]["uid"], f"c{i}"))
    return refs


def _check_invariants(node: PluginNode, acked_prepared: set[str]) -> None:
    ckpt = Checkpoint.load(node.checkpoint).claims()
    completed = {uid for uid, c in ckpt.items() if c.state == "PrepareCompleted"}
    assert completed == set(ckpt), f"interrupted prepares survived repair: {ckpt}"
    owned = {
        (d.hardware.gpu_index, d.hardware.gpu_instance_id)
        for c in ckpt.values()
        for d in c.devices
        if isinstance(d.hardware, MigPartition)
    }
    on_gpu = {(gpu, gi) for gpu, gi, _ in node.machine.mig_partitions()}
    assert on_gpu == owned, f"MIG partitions without an owner: {on_gpu - owned}; missing: {owned - on_gpu}"
    specs = {p.name.split("_", 1)[1].removesuffix(".json") for p in node.cdi_dir.glob("*.json")}
    assert specs == completed, f"orphan CDI specs: {specs - completed}; missing: {completed - specs}"
    assert acked_prepared <= completed, f"prepared claims lost: {acked_prepared - completed}"


def test_sigkill_at_random_points_never_leaks_partitions_specs_or_claims(
    sandbox: Sandbox, kube: Kube, namespace: str
) -> None:
    name = f"crash-{random.randrange(16**6):06x}"
    api = sandbox.api_client()
    sim_node = register_node(api, name)
    node = PluginNode.create(name, sandbox.kubeconfig, "single-a100", Mig())
    seed = int(os.environ.get("CRASH_SEED", "20261123"))
    rng = random.Random(seed)
    calls = kills = interrupted = 0
    acked_prepared: set[str] = set()
    try:
        node.start(kube)
        refs = _allocated_claims(kube, namespace, name)
        while calls < MIN_CALLS or kills < MIN_KILLS:
            if not node.alive():
                node.start(kube, wait_slices=False)
            _check_invariants(node, acked_prepared)
            timer = threading.Timer(rng.uniform(0.0, 0.35), node.kill)
            timer.start()
            channel = grpc.insecure_channel(f"unix://{node.dra_socket()}")
            stub = api_pb2_grpc.DRAPluginStub(channel)  # type: ignore[no-untyped-call]
            try:
                while node.alive():
                    ref = rng.choice(refs)
                    prepare = ref.uid not in acked_prepared if rng.random() < 0.8 else ref.uid in acked_prepared
                    acked_prepared.discard(ref.uid)  # unknown until this call is acknowledged
                    calls += 1
                    try:
                        if prepare:
                            answer = proto.prepare_results_from_pb(
                                stub.NodePrepareResources(proto.prepare_request(proto.DRA_V1, [ref]), timeout=10)
                            )[ref.uid]
                            assert answer.error == "", answer.error
                            acked_prepared.add(ref.uid)
                        else:
                            errors = proto.unprepare_errors_from_pb(
                                stub.NodeUnprepareResources(proto.unprepare_request(proto.DRA_V1, [ref]), timeout=10)
                            )
                            assert errors[ref.uid] == ""
                    except grpc.RpcError:
                        interrupted += 1
                        break  # killed mid-call: this claim's state is unknown until the next call
            finally:
                timer.join()
                channel.close()
                node.kill()
                kills += 1
        node.start(kube, wait_slices=False)
        _check_invariants(node, acked_prepared)
    finally:
        node.stop()
        sim_node.stop()
        api.close()
        kube.delete(f"/api/v1/nodes/{name}")
    print(
        f"seed {seed}: {calls} prepare/unprepare calls, {kills} SIGKILLs ({interrupted} during a call), "
        f"{node.starts} plugin starts"
    )
    assert calls >= MIN_CALLS and kills >= MIN_KILLS
