"""CEL selectors, this driver's opaque configs (the shared validator) and device class references."""

from __future__ import annotations

from tests.lint.helpers import fields, lint

CLASS = """
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: fast.example.com}
spec:
  selectors:
  - cel: {expression: 'device.driver == "gpu.dra-driver.dev" &&'}
  config:
  - opaque:
      driver: gpu.dra-driver.dev
      parameters:
        apiVersion: gpu.dra-driver.dev/v1alpha1
        kind: GpuConfig
        sharing: {strategy: TimeSlicing, timeSlicingConfig: {interval: Quick}}
"""


def _claim(config: str, extra_request: str = "") -> str:
    return f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {{name: c}}
spec:
  devices:
    requests:
    - name: gpu
      exactly: {{deviceClassName: gpu.dra-driver.dev}}
{extra_request}    config:
{config}"""


def test_class_selector_that_does_not_compile_is_reported_like_the_api_server() -> None:
    found = lint(CLASS)
    [cel] = [f for f in found if f.check == "cel"]
    assert cel.field == "spec.selectors[0].cel.expression"
    assert cel.message.startswith("compilation failed: ERROR: <input>:1:")


def test_request_selector_returning_a_string_is_refused() -> None:
    text = _claim("      []\n").replace(
        "exactly: {deviceClassName: gpu.dra-driver.dev}",
        "exactly: {deviceClassName: gpu.dra-driver.dev, selectors: [{cel: {expression: '\"x\"'}}]}",
    )
    [finding] = lint(text)
    assert finding.check == "cel" and "must evaluate to bool" in finding.message


def test_class_config_is_checked_with_the_shared_validator() -> None:
    [config] = [f for f in lint(CLASS) if f.check == "config"]
    assert config.field == "spec.config[0].opaque.parameters.sharing.timeSlicingConfig.interval"
    assert "Quick" in config.message and "Default, Short, Medium, Long" in config.message


def test_every_bad_config_entry_is_reported_not_only_the_first() -> None:
    config = """    - opaque:
        driver: gpu.dra-driver.dev
        parameters: {apiVersion: gpu.dra-driver.dev/v1alpha1, kind: GpuConfig, sharing: {strategy: Fast}}
    - opaque:
        driver: gpu.dra-driver.dev
        parameters: {apiVersion: gpu.dra-driver.dev/v1alpha1, kind: GpuConfig, sharin: {}}
"""
    assert fields(lint(_claim(config)), "config") == [
        "spec.devices.config[0].opaque.parameters.sharing.strategy",
        "spec.devices.config[1].opaque.parameters.sharin",
    ]


def test_other_drivers_configs_are_ignored_however_they_look() -> None:
    config = "    - opaque: {driver: net.example.com, parameters: {kind: Anything, sharing: 5}}\n"
    assert lint(_claim(config)) == []


def test_mps_percentage_as_a_string_names_the_field_and_the_type() -> None:
    config = """    - opaque:
        driver: gpu.dra-driver.dev
        parameters:
          apiVersion: gpu.dra-driver.dev/v1alpha1
          kind: GpuConfig
          sharing: {strategy: MPS, mpsConfig: {defaultActiveThreadPercentage: "50"}}
"""
    [finding] = lint(_claim(config))
    assert finding.field == "spec.devices.config[0].opaque.parameters.sharing.mpsConfig.defaultActiveThreadPercentage"
    assert finding.message == 'must be an integer (1..100), got string "50"'


def test_duplicate_key_in_parameters_is_reported_at_its_path_and_line() -> None:
    config = """    - opaque:
        driver: gpu.dra-driver.dev
        parameters:
          apiVersion: gpu.dra-driver.dev/v1alpha1
          kind: GpuConfig
          kind: MigDeviceConfig
"""
    [finding] = lint(_claim(config))
    assert finding.field == "spec.devices.config[0].opaque.parameters.kind" and "duplicate key" in finding.message
    assert finding.line == 15


def test_unknown_class_is_reported_with_the_closest_known_name() -> None:
    text = _claim("      []\n").replace(
        "deviceClassName: gpu.dra-driver.dev", "deviceClassName: mig-1g-5gb.dra-driver.io"
    )
    [finding] = lint(text)
    assert finding.check == "reference" and finding.field == "spec.devices.requests[0].exactly.deviceClassName"
    assert (
        "is not in the linted files or the shipped classes; did you mean 'mig-1g-5gb.dra-driver.dev'?"
        in finding.message
    )


def test_a_class_defined_in_the_linted_files_counts_as_existing() -> None:
    good_class = CLASS.replace(" &&'", "'").replace("Quick", "Short")
    text = _claim("      []\n").replace("gpu.dra-driver.dev}", "fast.example.com}") + "---\n" + good_class
    assert lint(text) == []


def test_subrequest_classes_are_checked_too() -> None:
    request = """    - name: alt
      firstAvailable:
      - {name: a, deviceClassName: nope.example.com}
"""
    assert fields(lint(_claim("      []\n", request)), "reference") == [
        "spec.devices.requests[1].firstAvailable[0].deviceClassName"
    ]
