"""The manifests in docs/opaque-config.md decode, and resolve as the page says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from api.config import GpuConfig, MigDeviceConfig, Mps, TimeSlicing, decode_configs, resolve_configs
from api.config.strict import load_yaml_documents

DRIVER = "gpu.dra-driver.dev"
PAGE = Path(__file__).parents[2] / "docs" / "opaque-config.md"


def manifests() -> dict[str, Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", PAGE.read_text(), re.S)
    docs = [doc for block in blocks for doc in load_yaml_documents(block)]
    return {doc["metadata"]["name"]: doc for doc in docs if "metadata" in doc}


def test_every_example_config_decodes() -> None:
    found = manifests()
    assert set(found) == {"gpu-short-slices.gpu.dra-driver.dev", "mixed", "small-or-whole"}
    for doc in found.values():
        spec = doc["spec"]
        raw = spec["config"] if doc["kind"] == "DeviceClass" else spec["devices"]["config"]
        assert decode_configs(raw, DRIVER, "config", "FromClass")


def test_examples_resolve_as_documented() -> None:
    found = manifests()
    mixed = resolve_configs(found["gpu-short-slices.gpu.dra-driver.dev"]["spec"]["config"],
                            found["mixed"]["spec"]["devices"]["config"], DRIVER)  # fmt: skip
    assert mixed.config_for("trainer", "gpu") == GpuConfig(TimeSlicing("Long"))
    assert mixed.config_for("helper", "mig") == MigDeviceConfig(Mps(50, 4 << 30))
    fallback = resolve_configs(None, found["small-or-whole"]["spec"]["devices"]["config"], DRIVER)
    assert fallback.config_for("gpu/small", "mig") == MigDeviceConfig(Mps(25))
    assert fallback.config_for("gpu/whole", "gpu") == GpuConfig(Mps(25))
