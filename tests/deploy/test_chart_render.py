"""The chart through the real helm (built at the pinned version): lint, template for every value variant, the
driver name followed everywhere, the schema's refusals, kubeVersion. Server-side acceptance of every rendered
object is e2e/sandbox/test_chart.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.webhook.registration import RESOURCES, VERSIONS
from dra_driver.classes import device_classes
from sandbox.versions import HELM_VERSION
from tests.deploy.chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    SERVICE_MONITOR_API,
    VARIANTS,
    by_kind,
    for_lint,
    helm,
    one,
    plugin_env,
    refusal,
    template,
)

pytestmark = pytest.mark.sandbox  # needs the helm binary (built into the cache on first use)


def test_built_helm_reports_the_pinned_version(helm: Path) -> None:
    done = helm_run(helm, "version")
    assert f'Version:"{HELM_VERSION}"' in done


def helm_run(binary: Path, *args: str) -> str:
    done = helm(binary, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_chart_lints_clean(helm: Path, variant: str) -> None:
    out = helm_run(helm, "lint", str(CHART), "--strict", *for_lint(VARIANTS[variant]))
    assert "1 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_renders_named_labelled_objects(helm: Path, variant: str) -> None:
    objects = template(helm, *VARIANTS[variant])
    assert one(objects, "DaemonSet")
    for obj in objects:
        meta = obj["metadata"]
        assert len(meta["name"]) <= 253 and meta["labels"]["app.kubernetes.io/instance"] == RELEASE, meta
        if obj["kind"] in ("Service", "Deployment", "DaemonSet", "ServiceAccount", "ConfigMap", "Secret"):
            assert meta["namespace"] == NAMESPACE


def test_default_install_is_the_plugin_its_rbac_classes_and_the_slice_policy(helm: Path) -> None:
    kinds = sorted({o["kind"] for o in template(helm)})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
        "DeviceClass",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]


@pytest.mark.parametrize("driver", ["gpu.dra-driver.dev", "acme-gpu.example.com", "gpu.acme.example.com"])
def test_every_driver_derived_field_follows_driver_name(helm: Path, driver: str) -> None:
    objects = template(helm, "--set", f"driverName={driver}", "--set", "webhook.enabled=true")
    classes = by_kind(objects, "DeviceClass")
    for c in classes:
        del c["metadata"]["labels"]
    assert classes == device_classes(driver)
    assert plugin_env(objects)["DRIVER_NAME"] == driver
    webhook = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert f"--driver={driver}" in webhook["args"]
    assert one(objects, "ValidatingWebhookConfiguration")["webhooks"][0]["name"] == f"opaque-config.{driver}"
    policy = one(objects, "ValidatingAdmissionPolicy")
    assert {"name": "driver", "expression": f'"{driver}"'} in policy["spec"]["variables"]
    if driver != "gpu.dra-driver.dev":
        rendered = helm_run(helm, "template", RELEASE, str(CHART), "--set", f"driverName={driver}")
        # the API group of the driver's own types (apiVersion prefixes, RBAC apiGroups) is fixed, not the driver name
        fixed = rendered.replace("gpu.dra-driver.dev/", "").replace('apiGroups: ["gpu.dra-driver.dev"]', "")
        assert not re.search(r"(?<![\w.-])gpu\.dra-driver\.dev(?![\w.-])", fixed)


def test_webhook_rules_are_the_registration_commands(helm: Path) -> None:
    webhook = one(template(helm, *VARIANTS["webhook"]), "ValidatingWebhookConfiguration")["webhooks"][0]
    rule = webhook["rules"][0]
    assert rule["apiVersions"] == list(VERSIONS) and rule["resources"] == list(RESOURCES)
    assert webhook["sideEffects"] == "None" and webhook["failurePolicy"] == "Fail"


def test_webhook_tls_sources(helm: Path) -> None:
    generated = template(helm, *VARIANTS["webhook"])
    secret = one(generated, "Secret")
    assert secret["type"] == "kubernetes.io/tls" and set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    config = one(generated, "ValidatingWebhookConfiguration")
    assert config["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]

    managed = template(helm, *VARIANTS["webhook-cert-manager"])
    assert sorted(o["kind"] for o in managed if o["apiVersion"] == "cert-manager.io/v1") == ["Certificate", "Issuer"]
    config = one(managed, "ValidatingWebhookConfiguration")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/gpu-dra-gpu-webhook"
    assert "caBundle" not in config["webhooks"][0]["clientConfig"] and not by_kind(managed, "Secret")

    own = template(helm, *VARIANTS["webhook-secret"])
    assert not by_kind(own, "Secret")
    assert one(own, "ValidatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"] == "Q0E="
    volumes = one(own, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "tls", "secret": {"secretName": "mine"}}]


def test_metrics_set_the_plugin_port_and_a_service_monitor_only_where_the_crd_is_served(helm: Path) -> None:
    assert "METRICS_PORT" not in plugin_env(template(helm))
    plain = template(helm, "--set", "metrics.enabled=true,metrics.port=9555")
    assert plugin_env(plain)["METRICS_PORT"] == "9555"
    assert one(plain, "Service")["spec"]["ports"][0]["port"] == 9555
    assert not by_kind(plain, "ServiceMonitor")
    monitored = template(helm, "--set", "metrics.enabled=true", "--api-versions", SERVICE_MONITOR_API)
    assert one(monitored, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"
    off = template(
        helm,
        "--set",
        "metrics.enabled=true,metrics.serviceMonitor.enabled=false",
        "--api-versions",
        SERVICE_MONITOR_API,
    )
    assert not by_kind(off, "ServiceMonitor")


def test_simulated_gpus_run_the_simulated_image_without_the_host_driver(helm: Path) -> None:
    objects = template(helm, *VARIANTS["simulated"])
    env = plugin_env(objects)
    assert env["SIMULATED_GPUS"] == "true" and env["SIMULATED_GPU_PROFILE"] == "dgx-h100"
    assert "DRIVER_ROOT" not in env and "HOST_DRIVER_ROOT" not in env
    pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "dra-gpu-plugin:dev-simulated"
    assert pod["containers"][0]["securityContext"]["privileged"] is False
    assert pod["containers"][0]["command"] == ["python", "-m", "nvml_sim.entrypoint"]  # racks the machine, execs
    real = one(template(helm), "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    assert real["command"] == ["python", "-m", "kubelet_plugin"]
    assert pod["nodeSelector"] == {} and "driver-root" not in [v["name"] for v in pod["volumes"]]
    assert "SIMULATED_GPUS" not in plugin_env(template(helm))


def test_controller_is_off_by_default_and_runs_python_m_controller_when_on(helm: Path) -> None:
    assert not by_kind(template(helm), "Deployment")
    deployment = one(template(helm, *VARIANTS["controller"]), "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "-m", "controller"]


def test_template_works_without_kube_version_and_kube_version_gates_old_clusters(helm: Path) -> None:
    assert template(helm)  # helm's built-in version is the one its client-go stands for (gobuild.ldflags)
    for accepted in ("1.34.0", "v1.34.0-gke.1200", "v1.35.0-rc.1", "v1.37.2+k3s1"):
        assert template(helm, "--kube-version", accepted)
    message = refusal(helm, "template", "--kube-version", "1.33.9")
    assert "chart requires kubeVersion: >=1.34.0-0 which is incompatible with Kubernetes v1.33.9" in message


@pytest.mark.parametrize(
    ("values", "field"),
    [
        (("--set", "driverName=Bad_Name"), "at '/driverName': 'Bad_Name' does not match pattern"),
        (("--set", "rescanSeconds=soon"), "at '/rescanSeconds': got string, want number"),
        (("--set", "healthPort=70000"), "at '/healthPort': maximum: got 70,000, want 65,535"),
        (("--set", "webhook.tls.source=vault"), "at '/webhook/tls/source': value must be one of"),
        (("--set", "webhook.enabled=true,webhook.tls.source=secret"), "at '/webhook/tls/secretName': minLength"),
        (("--set", "simulatedGpus.profile=dgx-b200"), "at '/simulatedGpus/profile': value must be one of"),
        (("--set", "partitioning.defaultMode=timeslice:65"), "at '/partitioning/defaultMode'"),
        (("--set", "image.pullPolicy=Sometimes"), "at '/image/pullPolicy': value must be one of"),
        (("--set", "driverNmae=x"), "additional properties 'driverNmae' not allowed"),
    ],
)
@pytest.mark.parametrize("command", ["lint", "template"])
def test_bad_values_are_refused_naming_the_field(helm: Path, command: str, values: tuple[str, ...], field: str) -> None:
    assert field in refusal(helm, command, *values)


def test_checks_beyond_the_schema_refuse_at_render_time(helm: Path) -> None:
    # helm lint turns a template's `fail` into an [INFO] line; install, upgrade and template refuse.
    same_port = refusal(helm, "template", "--set", "metrics.enabled=true,metrics.port=51516")
    assert "metrics.port and healthPort are both 51516: the plugin binds both" in same_port


def test_extra_env_follows_the_charts_own_variables(helm: Path) -> None:
    sets = "extraEnv[0].name=KUBERNETES_SERVICE_HOST,extraEnv[0].value=10.1.2.3,extraEnv[1].name=HTTPS_PROXY"
    objects = template(helm, "--set", sets + ",extraEnv[1].value=http://proxy:3128")
    container = one(objects, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    names = [e["name"] for e in container["env"]]
    assert names[-2:] == ["KUBERNETES_SERVICE_HOST", "HTTPS_PROXY"] and "NODE_NAME" in names[:-2]
    assert plugin_env(objects)["KUBERNETES_SERVICE_HOST"] == "10.1.2.3"
    assert "KUBERNETES_SERVICE_HOST" not in plugin_env(template(helm))
