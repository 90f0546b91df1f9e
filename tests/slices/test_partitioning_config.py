"""The operator's per-node/per-GPU mode configuration: precedence and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from api.errors import ConfigError
from api.partitioning import Mig, Shared, TimeSlice, Whole, parse_config, parse_mode

DOC = """
apiVersion: gpu.dra-driver.dev/v1alpha1
kind: PartitioningConfig
defaultMode: whole
nodes:
- selector: {pool: training}
  mode: mig
  gpus:
  - index: 0
    mode: timeslice:4
  - productName: NVIDIA A30
    mode: shared
- selector: {pool: training, zone: b}
  gpus:
  - uuid: GPU-abc
    mode: whole
"""


def test_later_rules_and_gpu_overrides_win() -> None:
    config = parse_config(yaml.safe_load(DOC))
    training = {"pool": "training"}
    assert config.mode_for({}, 0, "GPU-x", "NVIDIA A100") == Whole()
    assert config.mode_for(training, 0, "GPU-x", "NVIDIA A100") == TimeSlice(4)
    assert config.mode_for(training, 1, "GPU-x", "NVIDIA A100") == Mig()
    assert config.mode_for(training, 2, "GPU-x", "NVIDIA A30") == Shared()
    assert config.mode_for(training | {"zone": "b"}, 3, "GPU-abc", "NVIDIA A100") == Whole()


@pytest.mark.parametrize(
    ("patch", "field", "message"),
    [
        ({"defaultMode": "halves"}, "defaultMode", "unknown mode 'halves'; valid modes: whole, mig"),
        ({"apiVersion": "v1"}, "apiVersion", "must be 'gpu.dra-driver.dev/v1alpha1'"),
        ({"nodes": [{"mode": "timeslice:99"}]}, "nodes[0].mode", "timeslice replicas must be 2..64"),
        ({"nodes": [{"gpus": [{"index": 1, "uuid": "x", "mode": "mig"}]}]}, "nodes[0].gpus[0]", "exactly one of"),
        ({"nodes": [{"gpus": [{"index": -1, "mode": "mig"}]}]}, "nodes[0].gpus[0].index", "non-negative"),
        ({"nodes": [{"gpus": [{"index": 1}]}]}, "nodes[0].gpus[0].mode", "required"),
        ({"nodes": [{"selectr": {}}]}, "nodes[0].selectr", "unknown field; valid fields: gpus, mode, selector"),
        ({"extra": 1}, "extra", "unknown field"),
    ],
)
def test_invalid_configs_name_the_field(patch: dict[str, Any], field: str, message: str) -> None:
    doc = {"apiVersion": "gpu.dra-driver.dev/v1alpha1", "kind": "PartitioningConfig", **patch}
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert err.value.field == field
    assert message in str(err.value)


def test_modes_parse() -> None:
    assert parse_mode("timeslice:2", "m") == TimeSlice(2)
    assert str(parse_mode("shared", "m")) == "shared"
    with pytest.raises(ConfigError, match="must be a string"):
        parse_mode(3, "m")
