"""The chart's generated and hand-written parts agree with the code they come from (no helm needed)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from api.errors import ConfigError
from api.partitioning import parse_config, parse_mode
from nvml_sim.hardware import MACHINE_PROFILES
from tests.deploy.chart import CHART, DOCS, docs_example_values
from tools import gen_chart

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def schema_errors(values: dict[str, Any]) -> list[str]:
    """``/path: message`` for every schema violation (the path helm names too)."""
    validator = jsonschema.Draft7Validator(SCHEMA)
    return sorted("/" + "/".join(map(str, e.absolute_path)) + ": " + e.message for e in validator.iter_errors(values))


def with_value(path: str, value: Any) -> dict[str, Any]:
    values = json.loads(json.dumps(VALUES))
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return values


def test_committed_device_class_template_is_generated_from_dra_driver_classes() -> None:
    assert gen_chart.TEMPLATE.read_text() == gen_chart.classes_template(), f"run {gen_chart.COMMAND}"


def test_generator_templates_every_place_the_driver_name_appears() -> None:
    text = gen_chart.classes_template()
    assert gen_chart.SENTINEL_DOMAIN not in text
    assert 'dra-driver.dev"' not in text  # no default driver name frozen into a selector
    assert text.count("name: gpu.{{ $domain }}\n") == 1
    assert text.count("kind: DeviceClass") == 29


def test_generator_refuses_a_driver_derived_field_it_cannot_template() -> None:
    stray = {"metadata": {"annotations": {"x": f"made for {gen_chart.SENTINEL_DRIVER}"}}}
    with pytest.raises(gen_chart.StrayDriverName, match=r"metadata\.annotations\.x"):
        gen_chart._no_sentinel(stray, "")


def test_default_values_satisfy_the_schema_and_hold_a_valid_partitioning_config() -> None:
    assert schema_errors(VALUES) == []
    parse_config(VALUES["partitioning"])


def test_simulated_profiles_in_the_schema_are_the_simulated_nvml_profiles() -> None:
    assert SCHEMA["properties"]["simulatedGpus"]["properties"]["profile"]["enum"] == sorted(MACHINE_PROFILES)
    assert VALUES["simulatedGpus"]["profile"] in MACHINE_PROFILES


@pytest.mark.parametrize(
    "mode",
    ["whole", "mig", "shared", "timeslice:2", "timeslice:64", "timeslice:002", "timeslice:1", "timeslice:65",
     "timeslice:0", "timeslice:", "timeslice:x", "Whole", "mig ", "", "timeslice:0064", "timeslice:100"],
)  # fmt: skip
def test_schema_accepts_exactly_the_modes_the_plugin_accepts(mode: str) -> None:
    try:
        parse_mode(mode, "defaultMode")
        plugin_accepts = True
    except ConfigError:
        plugin_accepts = False
    assert (schema_errors(with_value("partitioning.defaultMode", mode)) == []) == plugin_accepts


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("driverName", "GPU.Example.com", "/driverName"),
        ("driverName", "nodots", "/driverName"),
        ("driverName", "a" * 60 + ".com", "/driverName"),
        ("image.pullPolicy", "Sometimes", "/image/pullPolicy"),
        ("rescanSeconds", "30", "/rescanSeconds"),
        ("rescanSeconds", 0, "/rescanSeconds"),
        ("healthPort", 70000, "/healthPort"),
        ("stateDir", "relative/dir", "/stateDir"),
        ("metrics.port", 0, "/metrics/port"),
        ("metrics.serviceMonitor.interval", "soon", "/metrics/serviceMonitor/interval"),
        ("webhook.tls.source", "vault", "/webhook/tls/source"),
        ("webhook.tls.secretName", "", "/webhook/tls"),  # with source "secret" below
        ("webhook.failurePolicy", "fail", "/webhook/failurePolicy"),
        ("webhook.replicas", 0, "/webhook/replicas"),
        ("simulatedGpus.profile", "dgx-b200", "/simulatedGpus/profile"),
        ("simulatedGpus.enabled", "yes", "/simulatedGpus/enabled"),
        ("partitioning.kind", "Partitioning", "/partitioning/kind"),
        ("partitioning.nodes", [{"gpus": [{"index": 0, "uuid": "GPU-1", "mode": "mig"}]}], "/partitioning/nodes/0"),
        ("tolerations", [{"operator": "Maybe"}], "/tolerations/0/operator"),
        ("nodeSelector", {"a": 1}, "/nodeSelector/a"),
        ("deviceClases", True, "/: Additional properties"),
    ],
)
def test_schema_rejects_bad_values_naming_the_field(path: str, value: Any, field: str) -> None:
    values = with_value(path, value)
    if path == "webhook.tls.secretName":
        values["webhook"]["tls"]["source"] = "secret"
    errors = schema_errors(values)
    assert errors, f"{path}={value!r} was accepted"
    assert any(e.startswith(field) for e in errors), errors


FREE_FORM = {"partitioning", "nodeSelector", "resources", "labels", "issuerRef"}  # documented as one value


def documented_values(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in FREE_FORM:
            paths += documented_values(value, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_every_value_is_in_the_values_table_of_docs_deploy_md() -> None:
    table = "\n".join(line for line in DOCS.read_text().splitlines() if line.startswith("| `"))
    missing = [p for p in documented_values(VALUES) if f"`{p}`" not in table]
    assert not missing, f"add to the values table in docs/deploy.md: {missing}"


def test_the_docs_example_values_satisfy_the_schema() -> None:
    example = yaml.safe_load(docs_example_values())
    merged = {**VALUES, **example}
    assert schema_errors(merged) == []
