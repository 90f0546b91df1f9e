"""The admission webhook end to end: served in-process on a loopback port, registered with the sandbox API
server (scoped to the test's namespace), rejecting bad opaque configs with the field path and admitting good
ones, for ResourceClaims and ResourceClaimTemplates in every served version. docs/webhook.md's manifests too.
"""

from __future__ import annotations

import copy
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.config.strict import load_yaml_documents
from controller.webhook import (
    ServerContexts,
    WebhookServer,
    namespace_only,
    register,
    self_signed,
    unregister,
    url_client_config,
    webhook_configuration,
)
from dra_driver.k8s import ApiError, Kube
from e2e.wait import until

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed")]
DRIVER = "gpu.dra-driver.dev"
R = "/apis/resource.k8s.io"
PAGE = Path(__file__).resolve().parents[2] / "docs" / "webhook.md"
DENIED = 'admission webhook "opaque-config.gpu.dra-driver.dev" denied the request: '
PLURAL = {"ResourceClaim": "resourceclaims", "ResourceClaimTemplate": "resourceclaimtemplates"}


def manifest(kind: str, version: str, name: str, sharing: dict[str, Any], driver: str = DRIVER) -> dict[str, Any]:
    request: dict[str, Any] = {"name": "gpu"}
    if version == "v1beta1":
        request["deviceClassName"] = "gpu.dra-driver.dev"
    else:
        request["exactly"] = {"deviceClassName": "gpu.dra-driver.dev"}
    parameters = {"apiVersion": "gpu.dra-driver.dev/v1alpha1", "kind": "GpuConfig", "sharing": sharing}
    spec: dict[str, Any] = {
        "devices": {"requests": [request], "config": [{"opaque": {"driver": driver, "parameters": parameters}}]}
    }
    if kind == "ResourceClaimTemplate":
        spec = {"spec": spec}
    return {"apiVersion": f"resource.k8s.io/{version}", "kind": kind, "metadata": {"name": name}, "spec": spec}


def create(kube: Kube, namespace: str, obj: dict[str, Any], **query: str) -> dict[str, Any]:
    version = obj["apiVersion"].split("/")[1]
    return kube.create(f"{R}/{version}/namespaces/{namespace}/{PLURAL[obj['kind']]}", obj, **query)


def rejection(kube: Kube, namespace: str, obj: dict[str, Any], **query: str) -> str:
    with pytest.raises(ApiError) as exc:
        create(kube, namespace, obj, **query)
    return str(exc.value.message)


BAD = {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Quick"}}
GOOD = {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Short"}}


@pytest.fixture
def webhook(kube: Kube, namespace: str, tmp_path: Path) -> Iterator[str]:
    """The webhook serving on a free loopback port, registered for ``namespace`` only; yields the namespace."""
    files = self_signed(tmp_path / "tls")
    assert files.ca is not None
    server = WebhookServer(ServerContexts(files), DRIVER, "127.0.0.1", 0)
    server.start()
    name = f"e2e-{namespace}.{DRIVER}"
    client = url_client_config(f"https://127.0.0.1:{server.port}/validate", files.ca.read_bytes())
    try:
        register(kube, webhook_configuration(client, name=name, namespace_selector=namespace_only(namespace)))
        probe = manifest("ResourceClaim", "v1", "probe", BAD)
        # The API server picks configurations up from a watch: wait until a dry run goes through the webhook.
        until(lambda: _denied(kube, namespace, probe), "the webhook to be called by the API server", timeout=30)
        yield namespace
    finally:
        try:
            unregister(kube, name)  # before the server stops: failurePolicy Fail would refuse claims meanwhile
        finally:
            server.shutdown()


def _denied(kube: Kube, namespace: str, obj: dict[str, Any]) -> bool:
    try:
        create(kube, namespace, obj, dryRun="All")
    except ApiError as e:
        return DENIED in e.message
    return False


@pytest.mark.parametrize("version", ["v1", "v1beta2", "v1beta1"])
@pytest.mark.parametrize(("kind", "prefix"), [("ResourceClaim", "spec"), ("ResourceClaimTemplate", "spec.spec")])
def test_bad_config_is_rejected_with_the_field_path_and_good_one_admitted(
    kube: Kube, webhook: str, kind: str, prefix: str, version: str
) -> None:
    message = rejection(kube, webhook, manifest(kind, version, "bad", BAD))
    assert message.startswith(DENIED)
    assert f"{prefix}.devices.config[0].opaque.parameters.sharing.timeSlicingConfig.interval: " in message
    assert "Quick" in message
    created = create(kube, webhook, manifest(kind, version, "good", GOOD))
    assert created["metadata"]["name"] == "good"


def test_other_drivers_configs_are_admitted(kube: Kube, webhook: str) -> None:
    create(kube, webhook, manifest("ResourceClaim", "v1", "other", {"whatever": 1}, driver="net.example.com"))


def test_updates_that_keep_the_configs_go_through(kube: Kube, webhook: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "dra_driver.webhook")
    path = f"{R}/v1/namespaces/{webhook}/resourceclaims/labelled"
    claim = create(kube, webhook, manifest("ResourceClaim", "v1", "labelled", GOOD))
    claim["metadata"]["labels"] = {"a": "b"}
    # A PUT of the object as read (a merge PATCH would re-encode the opaque parameters, which the API server
    # then takes for a change of the immutable spec when the client wrote them with spaces, as json.dumps does).
    assert kube.replace(path, claim)["metadata"]["labels"] == {"a": "b"}
    assert f"allowed UPDATE ResourceClaim {webhook}/labelled (v1)" in caplog.messages  # it went through the webhook


def test_claims_outside_the_registered_namespace_never_reach_the_webhook(kube: Kube, webhook: str) -> None:
    other = f"e2e-{uuid.uuid4().hex[:8]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": other}})
    try:
        create(kube, other, manifest("ResourceClaim", "v1", "unchecked", BAD))  # the API server alone admits it
    finally:
        kube.delete(f"/api/v1/namespaces/{other}")


def _page_manifests() -> dict[str, dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", PAGE.read_text(), re.S)
    docs = [doc for block in blocks for doc in load_yaml_documents(block)]
    return {doc["metadata"]["name"]: doc for doc in docs if doc.get("kind") in PLURAL}


def test_docs_examples_are_rejected_and_admitted_as_the_page_says(kube: Kube, webhook: str) -> None:
    examples = _page_manifests()
    assert set(examples) == {"bad-mps", "good-mps", "old-shape"}
    documented = re.search(r"```text\n(.*?)\n```", PAGE.read_text(), re.S)
    assert documented is not None
    for name in ("bad-mps", "old-shape"):
        message = rejection(kube, webhook, copy.deepcopy(examples[name]))
        assert f"{message}\n" in f"{documented.group(1)}\n", f"docs/webhook.md shows another message for {name}"
    create(kube, webhook, copy.deepcopy(examples["good-mps"]))
