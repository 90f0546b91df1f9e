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


# The chart's DeviceClasses are a template generated from device_classes(): tests/deploy checks it is current
# and that helm renders device_classes(driver) for any driverName.


def test_helm_default_partitioning_config_is_valid() -> None:
    from api.partitioning import Whole, parse_config

    values = yaml.safe_load((ROOT / "deploy" / "helm" / "dra-driver-gpu" / "values.yaml").read_text())
    assert parse_config(values["partitioning"]).default == Whole()
