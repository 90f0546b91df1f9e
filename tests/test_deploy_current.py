"""Shipped manifests are generated from code; the committed copies must be current."""

from __future__ import annotations

from pathlib import Path

import yaml

from dra_driver.classes import device_classes

ROOT = Path(__file__).resolve().parent.parent


def test_deploy_device_classes_match_dra_gpu_classes() -> None:
    committed = list(yaml.safe_load_all((ROOT / "deploy" / "device-classes.yaml").read_text()))
    assert committed == device_classes(), "regenerate with: dra-gpu classes > deploy/device-classes.yaml"


def test_every_device_class_selects_by_driver_and_type() -> None:
    for c in device_classes():
        expression = c["spec"]["selectors"][0]["cel"]["expression"]
        assert 'device.driver == "gpu.dra-driver.dev"' in expression and ".type ==" in expression


def test_helm_chart_ships_the_same_device_classes() -> None:
    chart = ROOT / "deploy" / "helm" / "dra-driver-gpu" / "files" / "device-classes.yaml"
    assert list(yaml.safe_load_all(chart.read_text())) == device_classes(), (
        "copy deploy/device-classes.yaml to deploy/helm/dra-driver-gpu/files/"
    )


def test_helm_default_partitioning_config_is_valid() -> None:
    from api.partitioning import Whole, parse_config

    values = yaml.safe_load((ROOT / "deploy" / "helm" / "dra-driver-gpu" / "values.yaml").read_text())
    assert parse_config(values["partitioning"]).default == Whole()
