"""The chart's controller: its policy ConfigMap is a ModePolicy the controller accepts, and its RBAC covers what
the controller does (watch, write NodeGpuModes, Events, the Lease, the probe's dry runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.main import build_parser
from controller.planner import Policy, load_policy
from sandbox.binaries import find_or_build_helm
from tests.deploy import chart
from tests.deploy.chart import VARIANTS, progress, template


@pytest.fixture(scope="module")
def helm() -> Path:
    return find_or_build_helm(progress)


def _kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and "controller" in str(o["metadata"]["name"])]


def test_the_policy_configmap_is_the_values_policy_and_the_controller_accepts_it(helm: Path) -> None:
    objs = template(helm, *VARIANTS["controller"])
    (cm,) = _kind(objs, "ConfigMap")
    policy = load_policy(cm["data"]["policy.yaml"])
    assert policy == Policy()  # the chart's defaults are the controller's
    custom = template(
        helm, "--set", "controller.enabled=true,controller.policy.dryRun=true,controller.policy.cooldownSeconds=9"
    )
    (cm,) = _kind(custom, "ConfigMap")
    assert load_policy(cm["data"]["policy.yaml"]) == Policy(dry_run=True, cooldown_s=9)


def test_the_deployment_passes_arguments_the_controller_knows(helm: Path) -> None:
    (deployment,) = _kind(template(helm, *VARIANTS["controller"]), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert args.policy == Path("/etc/dra-gpu-controller/policy.yaml") and args.port == 8080
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_rbac_covers_nodegpumodes_events_and_the_lease(helm: Path) -> None:
    objs = template(helm, *VARIANTS["controller"])
    (cluster_role,) = _kind(objs, "ClusterRole")
    rules = {
        (g, r): set(rule["verbs"])
        for rule in cluster_role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert {"create", "update", "watch"} <= rules[("gpu.dra-driver.dev", "nodegpumodes")]
    assert "create" in rules[("events.k8s.io", "events")] and "watch" in rules[("", "pods")]
    (role,) = _kind(objs, "Role")
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    refused = chart.helm(helm, "template", "x", chart.CHART, "--set", "controller.policy.cooldownSeconds=-1")
    assert refused.returncode != 0 and "cooldownSeconds" in refused.stderr
