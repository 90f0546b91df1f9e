"""The ValidatingWebhookConfiguration and the deploy/webhook manifests built around it."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.webhook import namespace_only, service_client_config, url_client_config, webhook_configuration
from controller.webhook.command import RegisterArgs, configuration
from controller.webhook.main import add_serve_arguments
from dra_driver.errors import ConfigError

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "webhook"


def manifests(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def test_rules_cover_claims_and_templates_in_every_served_version_on_create_and_update() -> None:
    [webhook] = webhook_configuration(url_client_config("https://127.0.0.1:1/validate", b"PEM"))["webhooks"]
    assert webhook["rules"] == [
        {
            "apiGroups": ["resource.k8s.io"],
            "apiVersions": ["v1", "v1beta2", "v1beta1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["resourceclaims", "resourceclaimtemplates"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["failurePolicy"] == "Fail" and webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]


def test_url_client_config_carries_the_ca_base64() -> None:
    client = url_client_config("https://127.0.0.1:8443/validate", b"-----BEGIN CERTIFICATE-----")
    assert base64.b64decode(client["caBundle"]) == b"-----BEGIN CERTIFICATE-----"


def test_namespace_selector_scopes_the_webhook_to_one_namespace() -> None:
    config = webhook_configuration(service_client_config("ns", "svc"), namespace_selector=namespace_only("team-a"))
    assert config["webhooks"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}}


def test_a_url_without_a_ca_is_refused() -> None:
    with pytest.raises(ConfigError, match="--ca-file"):
        configuration(RegisterArgs(kubeconfig=None, name="x", url="https://127.0.0.1:1/validate"))


def test_deploy_configuration_is_what_dra_gpu_webhook_manifest_prints() -> None:
    [committed] = manifests("validating-webhook-configuration.yaml")
    args = RegisterArgs(
        kubeconfig=None,
        name="gpu.dra-driver.dev",
        service="dra-driver-gpu/dra-driver-gpu-webhook",
        cert_manager="dra-driver-gpu/dra-driver-gpu-webhook",
    )
    assert committed == configuration(args), "regenerate with the command in the file's first line"


def test_deployment_service_and_certificate_fit_together() -> None:
    [deployment] = manifests("deployment.yaml")
    [service] = manifests("service.yaml")
    certificate = manifests("certificate.yaml")[1]
    [webhook] = manifests("validating-webhook-configuration.yaml")[0]["webhooks"]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["metadata"]["name"] == webhook["clientConfig"]["service"]["name"]
    assert service["spec"]["ports"][0]["port"] == webhook["clientConfig"]["service"]["port"]
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert pod["spec"]["volumes"][0]["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc" in certificate["spec"]["dnsNames"]
    # the container runs the webhook's own entry point with a valid command line on the declared port
    assert container["command"] == ["python", "-m", "controller.webhook"]
    parser = argparse.ArgumentParser(prog="python -m controller.webhook")
    add_serve_arguments(parser)
    args = parser.parse_args(container["args"])
    assert args.port == container["ports"][0]["containerPort"]
    assert str(args.tls_cert).startswith(container["volumeMounts"][0]["mountPath"])
