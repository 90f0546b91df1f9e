"""The example in docs/cdi.md is exactly what the model renders for that content."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dra_driver.cdi import ContainerEdits, Device, DeviceNode, Spec, claim_device_name
from tests.cdi.specs import CLAIM_UID, KIND


def test_docs_example_matches_the_rendered_spec() -> None:
    page = (Path(__file__).parents[2] / "docs" / "cdi.md").read_text()
    section = page.split("## A claim's spec", 1)[0]  # that section's example is the plugin's (tests/kubelet_plugin)
    (block,) = re.findall(r"```json\n(.*?)```", section, re.S)
    nodes = tuple(
        DeviceNode(p) for p in ("/dev/nvidia1", "/dev/nvidia-caps/nvidia-cap30", "/dev/nvidia-caps/nvidia-cap31")
    )
    spec = Spec(
        KIND,
        (
            Device(
                claim_device_name(CLAIM_UID, "gpu-1-mig-1g.5gb-3"),
                ContainerEdits(("NVIDIA_VISIBLE_DEVICES=MIG-5c3a…",), nodes),
            ),
        ),
        ContainerEdits(device_nodes=(DeviceNode("/dev/nvidiactl"), DeviceNode("/dev/nvidia-uvm"))),
    )
    assert json.loads(block) == spec.to_dict()
