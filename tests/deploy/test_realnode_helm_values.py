"""The chart values the real-node sandbox installs with (sandbox/realnode/helm_driver.py), checked by the chart's
own schema; bad input is refused naming it."""

from __future__ import annotations

import pytest

from api.errors import ConfigError
from sandbox.errors import SandboxError
from sandbox.realnode.helm_driver import chart_values
from tests.deploy.test_chart_sources import VALUES, schema_errors


def test_the_sandbox_values_pass_the_charts_schema_and_reach_the_api_server_directly() -> None:
    values = chart_values("dgx-a100", "mig", "https://127.0.0.1:34225", driver="gpu.helm.example")
    assert schema_errors(VALUES | values) == []
    assert values["simulatedGpus"] == {"enabled": True, "profile": "dgx-a100"}
    assert values["image"] == {"repository": "sandbox.local/dra-gpu-plugin", "tag": "dev", "pullPolicy": "Never"}
    assert values["partitioning"]["defaultMode"] == "mig"
    assert values["extraEnv"] == [
        {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": "34225"},
    ]


def test_bad_input_is_refused() -> None:
    with pytest.raises(SandboxError, match="is not https://HOST:PORT"):
        chart_values("dgx-a100", "mig", "http://127.0.0.1")
    with pytest.raises(ConfigError, match="--mode: unknown mode 'mig:7'"):
        chart_values("dgx-a100", "mig:7", "https://127.0.0.1:6443")


def test_the_schema_refuses_an_extra_env_entry_without_a_name() -> None:
    assert schema_errors(VALUES | {"extraEnv": [{"value": "x"}]})
