"""The real control plane: API groups, feature gates and controllers, observed from the outside."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kubernetes import client

from e2e.fixtures import Sandbox
from sandbox.binaries import find_or_build
from sandbox.controlplane import ControlPlane
from sandbox.errors import StartupFailed
from sandbox.featuregates import DRA_GATES
from tests.sandbox.helpers import enabled_gates_in_metrics, eventually

pytestmark = pytest.mark.sandbox


def test_apiserver_serves_resource_v1_and_lists_resource_slices(sandbox: Sandbox) -> None:
    with sandbox.api_client() as api:
        slices = client.ResourceV1Api(api).list_resource_slice()
        assert slices.api_version == "resource.k8s.io/v1"
        groups = client.ApisApi(api).get_api_versions().groups
    served = {v.version for g in groups if g.name == "resource.k8s.io" for v in g.versions}
    assert {"v1", "v1beta1", "v1beta2", "v1alpha3"} <= served
    assert sandbox.status.resource_versions == ("v1", "v1beta1", "v1beta2", "v1alpha3")


def test_every_requested_dra_gate_is_on_in_every_component(sandbox: Sandbox) -> None:
    gates = sandbox.feature_gates
    assert gates.unavailable == ()  # the pinned version knows all of them
    assert set(gates.effective) == set(DRA_GATES)
    ports = sandbox.status.ports
    for component in ("apiserver", "scheduler", "controller_manager"):
        on = enabled_gates_in_metrics(sandbox, ports[component])
        assert set(DRA_GATES) <= on, f"{component} lacks {set(DRA_GATES) - on}"


def test_scheduler_binds_a_pod_to_a_simulated_node(sandbox: Sandbox) -> None:
    name = f"sched-{uuid.uuid4().hex[:8]}"
    pod = client.V1Pod.from_dict(
        {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}
    )
    with sandbox.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("default", pod)
        node = eventually(lambda: core.read_namespaced_pod(name, "default").spec.node_name, 30, "the pod's binding")
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    assert node in sandbox.nodes


def test_resourceclaim_controller_creates_a_claim_for_a_pod_from_its_template(sandbox: Sandbox) -> None:
    suffix = uuid.uuid4().hex[:8]
    template = client.V1ResourceClaimTemplate.from_dict(
        {
            "metadata": {"name": f"tmpl-{suffix}"},
            "spec": {
                "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.example"}}]}}
            },
        }
    )
    pod = client.V1Pod.from_dict(
        {
            "metadata": {"name": f"claimer-{suffix}"},
            "spec": {
                "containers": [
                    {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"claims": [{"name": "gpu"}]}}
                ],
                "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": f"tmpl-{suffix}"}],
            },
        }
    )
    with sandbox.api_client() as api:
        resource = client.ResourceV1Api(api)
        resource.create_namespaced_resource_claim_template("default", template)
        client.CoreV1Api(api).create_namespaced_pod("default", pod)

        def claim_owned_by_pod() -> str | None:
            for claim in resource.list_namespaced_resource_claim("default").items:
                owners = claim.metadata.owner_references or []
                if any(o.kind == "Pod" and o.name == f"claimer-{suffix}" for o in owners):
                    return str(claim.metadata.name)
            return None

        eventually(claim_owned_by_pod, 30, "the ResourceClaim generated from the template")
        client.CoreV1Api(api).delete_namespaced_pod(f"claimer-{suffix}", "default", grace_period_seconds=0)


def test_start_that_misses_its_deadline_names_the_log_and_leaves_nothing_running(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path, find_or_build(lambda _: None), startup_timeout=1.0)
    with pytest.raises(StartupFailed) as caught:
        plane.start()
    message = str(caught.value)
    assert "did not become ready within 1 s" in message
    assert str(tmp_path / "logs") in message
    assert plane.processes == ()
    assert not any(p.stat().st_size == 0 for p in (tmp_path / "logs").iterdir())
