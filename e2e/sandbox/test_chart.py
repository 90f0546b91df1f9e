"""The Helm chart against the sandbox's real API server.

1. Every object every value variant renders (tests/deploy/chart.py VARIANTS) passes a server-side dry run
   (``dryRun=All``: defaulting, validation, admission; a create, or a replace where the object exists). The
   namespace, and permissive CRDs for the cert-manager and Prometheus-operator kinds, are created for real.
2. The ValidatingAdmissionPolicy: the chart's ServiceAccount, RBAC and policy applied for real; tokens minted
   for the plugin's ServiceAccount bound to a pod on node A; the plugin may write only node A's slices of the
   chart's driver.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration

from dra_driver.k8s import ApiError, Kube
from e2e.fixtures import Sandbox
from e2e.wait import until
from sandbox.binaries import find_or_build_helm
from tests.deploy.chart import NAMESPACE, RELEASE, VARIANTS, by_kind, helm, progress, template

pytestmark = pytest.mark.sandbox
Obj = dict[str, Any]
SLICES = "/apis/resource.k8s.io/v1/resourceslices"
POLICY_DRIVER = "vap-test.dra-driver.dev"
PLUGIN_SA = f"{RELEASE}-dra-gpu"
POLICY_NAME = f"{RELEASE}-dra-gpu-resourceslices"
FOREIGN_CRDS = (  # group, version, kind, plural
    ("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"),
    ("cert-manager.io", "v1", "Issuer", "issuers"),
    ("cert-manager.io", "v1", "Certificate", "certificates"),
)


@pytest.fixture(scope="module")
def helm_binary() -> Path:
    return find_or_build_helm(progress)


@pytest.fixture(scope="module")
def chart_namespace(kube: Kube) -> Iterator[str]:
    kube.create("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    yield NAMESPACE
    kube.delete(f"/api/v1/namespaces/{NAMESPACE}")


def permissive_crd(group: str, version: str, kind: str, plural: str) -> Obj:
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [{"name": version, "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }


@pytest.fixture(scope="module")
def foreign_crds(kube: Kube) -> Iterator[None]:
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for group, version, kind, plural in FOREIGN_CRDS:
        kube.create(crds, permissive_crd(group, version, kind, plural))
    for group, version, _, plural in FOREIGN_CRDS:
        until(lambda g=group, v=version, p=plural: _served(kube, g, v, p), f"{plural}.{group} served")
    yield
    for group, _, _, plural in FOREIGN_CRDS:
        kube.delete(f"{crds}/{plural}.{group}")


def _served(kube: Kube, group: str, version: str, plural: str) -> bool:
    resources = (kube.get(f"/apis/{group}/{version}") or {}).get("resources", [])
    return any(r["name"] == plural for r in resources)


class Paths:
    """Collection paths from discovery: (apiVersion, kind) -> (plural, namespaced)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.known: dict[tuple[str, str], tuple[str, bool]] = {}

    def collection(self, obj: Obj, namespace: str) -> str:
        api_version, kind = obj["apiVersion"], obj["kind"]
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if (api_version, kind) not in self.known:
            for r in (self.kube.get(base) or {}).get("resources", []):
                if "/" not in r["name"]:
                    self.known[(api_version, r["kind"])] = (r["name"], r["namespaced"])
        plural, namespaced = self.known[(api_version, kind)]
        return f"{base}/namespaces/{namespace}/{plural}" if namespaced else f"{base}/{plural}"


def dry_run(kube: Kube, paths: Paths, obj: Obj, namespace: str) -> Obj:
    """What the server would store for ``obj``: a dry-run create, or a dry-run replace if it exists."""
    collection = paths.collection(obj, namespace)
    try:
        return kube.create(collection, obj, dryRun="All")
    except ApiError as exc:
        if exc.status != 409:
            raise
    item = f"{collection}/{obj['metadata']['name']}"
    existing = kube.get(item) or {}
    body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": existing["metadata"]["resourceVersion"]}}
    return kube.request("PUT", item, body, query={"dryRun": "All"})


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.usefixtures("foreign_crds")
def test_every_rendered_object_passes_a_server_side_dry_run(
    helm_binary: Path, kube: Kube, chart_namespace: str, variant: str
) -> None:
    paths = Paths(kube)
    objects = template(helm_binary, *VARIANTS[variant], namespace=chart_namespace)
    refused = []
    for obj in objects:
        try:
            stored = dry_run(kube, paths, obj, chart_namespace)
        except ApiError as exc:
            refused.append(f"{obj['kind']} {obj['metadata']['name']}: {exc}")
            continue
        assert stored["kind"] == obj["kind"] and stored["metadata"]["name"] == obj["metadata"]["name"]
        if obj["kind"] == "DeviceClass":  # nothing dropped: every field is served by this cluster
            assert stored["spec"] == obj["spec"], obj["metadata"]["name"]
    assert not refused, "\n".join(refused)


def test_notes_tell_what_to_check_after_install(helm_binary: Path, sandbox: Sandbox) -> None:
    done = helm(
        helm_binary,
        "install",
        RELEASE,
        str(Path(__file__).resolve().parents[2] / "deploy" / "helm" / "dra-driver-gpu"),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
        "--kubeconfig",
        str(sandbox.kubeconfig),
        "--set",
        "driverName=notes.example.com",
    )
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    assert "kubectl get resourceslices --field-selector spec.driver=notes.example.com" in notes
    assert "kubectl get deviceclasses | grep notes.example.com" in notes
    assert f"-l app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=kubelet-plugin" in notes


# --- the admission policy --------------------------------------------------------------------------------


def kube_with_token(sandbox: Sandbox, token: str) -> Kube:
    """A client that authenticates with ``token`` only (the admin's client certificate dropped)."""
    cfg = Configuration()
    kube_config.load_kube_config(config_file=str(sandbox.kubeconfig), client_configuration=cfg)
    cfg.cert_file = cfg.key_file = None
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return Kube(ApiClient(cfg))


def mint_token(kube: Kube, pod: Obj | None) -> str:
    spec: Obj = {"expirationSeconds": 600}
    if pod is not None:
        spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"]}
        spec["boundObjectRef"]["uid"] = pod["metadata"]["uid"]
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    path = f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{PLUGIN_SA}/token"
    token: str = kube.create(path, body)["status"]["token"]
    return token


def resource_slice(driver: str, node: str, pool: str | None = None, generation: int = 1) -> Obj:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"vap-{uuid.uuid4().hex[:8]}"},
        "spec": {
            "driver": driver,
            "nodeName": node,
            "pool": {"name": pool or node, "generation": generation, "resourceSliceCount": 1},
        },
    }


@pytest.fixture(scope="module")
def plugin_identity(helm_binary: Path, kube: Kube, chart_namespace: str, sandbox: Sandbox) -> Iterator[Obj]:
    """The chart's ServiceAccount, RBAC and admission policy applied for real (driver POLICY_DRIVER), and a pod
    of that ServiceAccount bound to node A; yields the pod."""
    objects = template(helm_binary, "--set", f"driverName={POLICY_DRIVER}", namespace=chart_namespace)
    paths = Paths(kube)
    kinds = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy")
    applied = [o for kind in (*kinds, "ValidatingAdmissionPolicyBinding") for o in by_kind(objects, kind)]
    with contextlib.ExitStack() as undo:
        for obj in applied:
            path = paths.collection(obj, chart_namespace)
            kube.create(path, obj)
            undo.callback(kube.delete, f"{path}/{obj['metadata']['name']}")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "plugin-on-node-a"},
            "spec": {
                "nodeName": sandbox.nodes[0],
                "serviceAccountName": PLUGIN_SA,
                "containers": [{"name": "plugin", "image": "sandbox.local/busybox:latest"}],
            },
        }
        pods = f"/api/v1/namespaces/{chart_namespace}/pods"
        created = kube.create(pods, pod)
        undo.callback(kube.delete, f"{pods}/{pod['metadata']['name']}", gracePeriodSeconds="0")
        yield created


@pytest.fixture(scope="module")
def as_plugin(plugin_identity: Obj, kube: Kube, sandbox: Sandbox) -> Iterator[Kube]:
    """The API as the plugin on node A sees it, once the policy is in force (its informer takes a moment)."""
    plugin = kube_with_token(sandbox, mint_token(kube, plugin_identity))

    def in_force() -> bool:
        try:
            plugin.create(SLICES, resource_slice("other.example.com", "no-such-node"))
        except ApiError as exc:
            return exc.status == 403 and POLICY_NAME in str(exc)
        kube.delete(SLICES, fieldSelector="spec.driver=other.example.com")
        return False

    until(in_force, "the chart's ValidatingAdmissionPolicy to refuse the plugin's foreign slices", timeout=30)
    yield plugin
    plugin.api_client.close()


def refused(kube: Kube, method: str, path: str, body: Obj | None = None) -> str:
    with pytest.raises(ApiError) as caught:
        kube.request(method, path, body)
    assert caught.value.status == 403, caught.value
    return str(caught.value)


def denied(message: str) -> str:
    return f"ValidatingAdmissionPolicy '{POLICY_NAME}' with binding '{POLICY_NAME}' denied request: {message}"


def test_plugin_writes_its_own_nodes_slices_of_its_driver(as_plugin: Kube, kube: Kube, sandbox: Sandbox) -> None:
    node_a = sandbox.nodes[0]
    mine = resource_slice(POLICY_DRIVER, node_a)
    created = as_plugin.create(SLICES, mine)
    path = f"{SLICES}/{mine['metadata']['name']}"
    try:
        created["spec"]["pool"]["generation"] = 2
        as_plugin.replace(path, created)
    finally:
        assert as_plugin.delete(path)


def test_plugin_cannot_publish_for_another_node(as_plugin: Kube, sandbox: Sandbox) -> None:
    node_a, node_b = sandbox.nodes[0], sandbox.nodes[1]
    theirs = resource_slice(POLICY_DRIVER, node_b)
    message = refused(as_plugin, "POST", SLICES, theirs)
    assert message.endswith(
        f'HTTP 403: resourceslices.resource.k8s.io "{theirs["metadata"]["name"]}" is forbidden: '
        + denied(
            f"the kubelet plugin on node {node_a} may only write ResourceSlices with spec.nodeName {node_a} and "
            f"spec.pool.name {node_a}, not nodeName {node_b} and pool {node_b}"
        )
    ), message


def test_plugin_cannot_hide_another_nodes_pool_behind_a_higher_generation(as_plugin: Kube, sandbox: Sandbox) -> None:
    node_a, node_b = sandbox.nodes[0], sandbox.nodes[1]
    message = refused(as_plugin, "POST", SLICES, resource_slice(POLICY_DRIVER, node_a, pool=node_b, generation=99))
    assert f"not nodeName {node_a} and pool {node_b}" in message


def test_plugin_cannot_publish_for_another_driver(as_plugin: Kube, sandbox: Sandbox) -> None:
    message = refused(as_plugin, "POST", SLICES, resource_slice("other.example.com", sandbox.nodes[0]))
    assert (
        denied(f"the kubelet plugin may only write ResourceSlices of driver {POLICY_DRIVER}, not other.example.com")
        in message
    )
    message = refused(as_plugin, "POST", SLICES, resource_slice("other.example.com", "no-such-node"))
    assert POLICY_NAME in message  # the issue's case: another driver on a node that does not exist


def test_plugin_cannot_change_or_delete_another_nodes_slices(as_plugin: Kube, kube: Kube, sandbox: Sandbox) -> None:
    node_a, node_b = sandbox.nodes[0], sandbox.nodes[1]
    theirs = kube.create(SLICES, resource_slice(POLICY_DRIVER, node_b))  # the admin is not the plugin: allowed
    path = f"{SLICES}/{theirs['metadata']['name']}"
    try:
        expected = denied(
            f"the kubelet plugin on node {node_a} may only change or delete ResourceSlices of its own node and "
            f"driver {POLICY_DRIVER}, not one of node {node_b} and driver {POLICY_DRIVER}"
        )
        assert expected in refused(as_plugin, "DELETE", path)
        bumped = {**theirs, "spec": {**theirs["spec"], "pool": {**theirs["spec"]["pool"], "generation": 99}}}
        message = refused(as_plugin, "PUT", path, bumped)  # the first failing check speaks: the new object's node
        assert (
            denied(f"the kubelet plugin on node {node_a} may only write ResourceSlices with spec.nodeName") in message
        )
    finally:
        kube.delete(path)


def test_a_token_not_bound_to_a_pod_on_a_node_may_write_no_slice(
    plugin_identity: Obj, as_plugin: Kube, kube: Kube, sandbox: Sandbox
) -> None:
    unbound = kube_with_token(sandbox, mint_token(kube, None))
    try:
        message = refused(unbound, "POST", SLICES, resource_slice(POLICY_DRIVER, sandbox.nodes[0]))
        assert "token is not bound to a pod on a node" in message
    finally:
        unbound.api_client.close()


def test_the_plugins_capability_probe_still_works(as_plugin: Kube) -> None:
    from dra_driver.resourceslice.probe import probe

    caps = probe(as_plugin)  # dry-run slices of a probe driver on all nodes: no write, so no refusal
    assert caps.partitionable_devices and caps.api_version == "v1"
