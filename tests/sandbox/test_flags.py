from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import flags
from sandbox.binaries import Binaries
from sandbox.featuregates import FeatureGates
from sandbox.layout import Layout
from sandbox.pki import Pki


@pytest.fixture
def inputs(tmp_path: Path) -> flags.Inputs:
    bins = Binaries(*(tmp_path / n for n in ("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager")))
    gates = FeatureGates(("A", "B", "C"), ("A", "B"), ("C",), ())
    return flags.Inputs(bins, Layout(tmp_path), Pki(tmp_path / "pki"), flags.Ports(1001, 1002, 1003, 1004, 1005), gates)


def values(argv: tuple[str, ...], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]


def test_every_kubernetes_component_gets_the_same_feature_gates(inputs: flags.Inputs) -> None:
    for argv in (flags.apiserver(inputs), flags.scheduler(inputs), flags.controller_manager(inputs)):
        assert values(argv, "feature-gates") == ["A=true,B=true"]


def test_no_feature_gates_flag_when_nothing_needs_setting(inputs: flags.Inputs) -> None:
    quiet = flags.Inputs(inputs.binaries, inputs.layout, inputs.pki, inputs.ports, FeatureGates(("C",), (), ("C",), ()))
    assert values(flags.apiserver(quiet), "feature-gates") == []


def test_everything_listens_on_loopback_only(inputs: flags.Inputs) -> None:
    for argv in (flags.apiserver(inputs), flags.scheduler(inputs), flags.controller_manager(inputs)):
        assert values(argv, "bind-address") == ["127.0.0.1"]
    etcd = flags.etcd(inputs)
    for name in ("listen-client-urls", "listen-peer-urls"):
        assert all(v.startswith("http://127.0.0.1:") for v in values(etcd, name))


def test_apiserver_enables_the_older_resource_api_versions(inputs: flags.Inputs) -> None:
    runtime = values(flags.apiserver(inputs), "runtime-config")[0].split(",")
    assert {"resource.k8s.io/v1beta1=true", "resource.k8s.io/v1beta2=true", "resource.k8s.io/v1alpha3=true"} <= set(
        runtime
    )


def test_controller_manager_runs_the_resourceclaim_controller_as_per_controller_service_accounts(
    inputs: flags.Inputs,
) -> None:
    argv = flags.controller_manager(inputs)
    assert "resourceclaim-controller" in values(argv, "controllers")[0].split(",")
    assert values(argv, "use-service-account-credentials") == ["true"]
    assert values(argv, "leader-elect") == ["false"]


def test_controller_names_are_read_from_the_help_text() -> None:
    text = "  --controllers strings  A list...\n     All controllers: a-controller, resourceclaim-controller, z\n"
    assert flags.known_controllers(text) == {"a-controller", "resourceclaim-controller", "z"}
