"""The ValidatingWebhookConfiguration that sends claims and claim templates to the webhook: built as a
dict (pure), then created or replaced and deleted through the API server.

Rules: group ``resource.k8s.io``, every served version (v1, v1beta2, v1beta1), CREATE and UPDATE of
``resourceclaims`` and ``resourceclaimtemplates``; ``failurePolicy: Fail`` (a config the plugin would
refuse never gets in), ``sideEffects: None`` (dry runs are validated too), ``admissionReviewVersions: [v1]``.
The client config is a URL (a webhook outside the cluster, e.g. next to the sandbox) or a Service.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from api.names import GROUP
from dra_driver.k8s import Kube

CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
DEFAULT_NAME = GROUP
WEBHOOK_NAME = f"opaque-config.{GROUP}"
VALIDATE_PATH = "/validate"
VERSIONS = ("v1", "v1beta2", "v1beta1")
RESOURCES = ("resourceclaims", "resourceclaimtemplates")
Obj = dict[str, Any]


def url_client_config(url: str, ca_bundle: bytes) -> Obj:
    """``clientConfig`` for a webhook reached by URL; ``ca_bundle`` is the PEM of the CA that signed it."""
    return {"url": url, "caBundle": base64.b64encode(ca_bundle).decode()}


def service_client_config(namespace: str, name: str, port: int = 443, ca_bundle: bytes | None = None) -> Obj:
    """``clientConfig`` for a webhook behind a Service (caBundle may be injected later, e.g. by cert-manager)."""
    config: Obj = {"service": {"namespace": namespace, "name": name, "path": VALIDATE_PATH, "port": port}}
    if ca_bundle is not None:
        config["caBundle"] = base64.b64encode(ca_bundle).decode()
    return config


def webhook_configuration(
    client_config: Obj,
    *,
    name: str = DEFAULT_NAME,
    namespace_selector: Mapping[str, Any] | None = None,
    object_selector: Mapping[str, Any] | None = None,
    timeout_seconds: int = 10,
) -> Obj:
    webhook: Obj = {
        "name": WEBHOOK_NAME,
        "clientConfig": client_config,
        "rules": [
            {
                "apiGroups": ["resource.k8s.io"],
                "apiVersions": list(VERSIONS),
                "operations": ["CREATE", "UPDATE"],
                "resources": list(RESOURCES),
                "scope": "Namespaced",
            }
        ],
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": timeout_seconds,
    }
    if namespace_selector is not None:
        webhook["namespaceSelector"] = dict(namespace_selector)
    if object_selector is not None:
        webhook["objectSelector"] = dict(object_selector)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [webhook],
    }


def namespace_only(namespace: str) -> Obj:
    """A ``namespaceSelector`` that matches one namespace (by its ``kubernetes.io/metadata.name`` label)."""
    return {"matchLabels": {"kubernetes.io/metadata.name": namespace}}


def register(kube: Kube, configuration: Obj) -> Obj:
    """Create the configuration, or replace an existing one of the same name."""
    name = configuration["metadata"]["name"]
    existing = kube.get(f"{CONFIGURATIONS}/{name}")
    if existing is None:
        return kube.create(CONFIGURATIONS, configuration)
    body = {
        **configuration,
        "metadata": {**configuration["metadata"], "resourceVersion": existing["metadata"]["resourceVersion"]},
    }
    return kube.replace(f"{CONFIGURATIONS}/{name}", body)


def unregister(kube: Kube, name: str = DEFAULT_NAME) -> bool:
    """Delete the configuration; False if it was not there."""
    return kube.delete(f"{CONFIGURATIONS}/{name}")
