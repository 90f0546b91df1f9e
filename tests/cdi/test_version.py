"""minimum_version follows the CDI project's rules (specs-go/version.go), one feature at a time."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dra_driver.cdi import ContainerEdits, Device, DeviceNode, Mount, Spec, minimum_version
from tests.cdi.specs import full, minimal

A = ContainerEdits(env=("A=1",))


def with_device_edits(edits: ContainerEdits) -> Spec:
    return minimal(devices=(Device("gpu-0", edits),))


@pytest.mark.parametrize(
    ("spec", "version"),
    [
        (minimal(), "0.3.0"),
        (minimal(container_edits=ContainerEdits(mounts=(Mount("/a", "/a"),))), "0.3.0"),
        (minimal(container_edits=ContainerEdits(mounts=(Mount("/a", "/a", "none"),))), "0.4.0"),
        (with_device_edits(ContainerEdits(mounts=(Mount("/a", "/a", "bind"),))), "0.4.0"),
        (minimal(devices=(Device("0gpu", A),)), "0.5.0"),
        (minimal(devices=(Device("gpu0", A),)), "0.3.0"),
        (with_device_edits(ContainerEdits(device_nodes=(DeviceNode("/dev/a", host_path="/dev/b"),))), "0.5.0"),
        (minimal(container_edits=ContainerEdits(device_nodes=(DeviceNode("/dev/a", host_path="/dev/b"),))), "0.5.0"),
        (minimal(annotations=(("example.com/a", "b"),)), "0.6.0"),
        (minimal(devices=(Device("gpu-0", A, (("a", "b"),)),)), "0.6.0"),
        (minimal(kind="example.com/gpu.mig"), "0.6.0"),
        (minimal(kind="example.com/gpu-mig"), "0.3.0"),
        (minimal(container_edits=ContainerEdits(additional_gids=(44,))), "0.7.0"),
        (with_device_edits(ContainerEdits(additional_gids=(44,))), "0.7.0"),
        (full(), "0.7.0"),
    ],
)
def test_minimum_version_is_the_lowest_that_the_content_needs(spec: Spec, version: str) -> None:
    assert minimum_version(spec) == version
    assert spec.to_dict()["cdiVersion"] == version


def test_the_newest_feature_decides() -> None:
    spec = minimal(devices=(Device("0gpu", ContainerEdits(mounts=(Mount("/a", "/a", "none"),))),))
    assert minimum_version(spec) == "0.5.0"
    assert minimum_version(replace(spec, annotations=(("a", "b"),))) == "0.6.0"
