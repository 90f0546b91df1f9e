"""Simulated nodes as the control plane sees them."""

from __future__ import annotations

import pytest
from kubernetes import client

from e2e.fixtures import Sandbox
from sandbox.nodes import LEASE_NAMESPACE
from tests.sandbox.helpers import eventually

pytestmark = pytest.mark.sandbox


def test_simulated_nodes_are_ready_and_carry_no_taints(sandbox: Sandbox) -> None:
    assert sandbox.nodes == ("sim-node-0", "sim-node-1")
    with sandbox.api_client() as api:
        nodes = {n.metadata.name: n for n in client.CoreV1Api(api).list_node().items}
    assert set(nodes) == set(sandbox.nodes)
    for node in nodes.values():
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True"
        assert not node.spec.taints
        assert node.status.allocatable["cpu"] == "16"


def test_node_lease_is_renewed_and_the_node_stays_ready(sandbox: Sandbox) -> None:
    with sandbox.api_client() as api:
        coordination = client.CoordinationV1Api(api)
        first = coordination.read_namespaced_lease("sim-node-0", LEASE_NAMESPACE).spec.renew_time

        def renewed() -> bool:
            return bool(coordination.read_namespaced_lease("sim-node-0", LEASE_NAMESPACE).spec.renew_time > first)

        eventually(renewed, 25, "a renewal of sim-node-0's Lease", interval=1.0)
        node = client.CoreV1Api(api).read_node("sim-node-0")
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
    assert not node.spec.taints
