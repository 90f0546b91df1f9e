"""Structure and cross-field rules of DeviceClass / ResourceClaim / ResourceClaimTemplate, per API version."""

from __future__ import annotations

import pytest

from tests.lint.helpers import fields, lint

GOOD_V1 = """
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: good}
spec:
  devices:
    requests:
    - name: gpu
      exactly:
        deviceClassName: gpu.dra-driver.dev
        count: 2
        selectors:
        - cel: {expression: 'device.attributes["gpu.dra-driver.dev"].productName.startsWith("NVIDIA")'}
    - name: small
      firstAvailable:
      - {name: mig, deviceClassName: mig.dra-driver.dev}
      - {name: whole, deviceClassName: gpu.dra-driver.dev}
    constraints:
    - {requests: [gpu, small], matchAttribute: resource.kubernetes.io/pcieRoot}
    config:
    - requests: [small/mig]
      opaque:
        driver: gpu.dra-driver.dev
        parameters: {apiVersion: gpu.dra-driver.dev/v1alpha1, kind: MigDeviceConfig}
"""


def claim(requests: str, version: str = "v1", kind: str = "ResourceClaim") -> str:
    body = f"  devices:\n    requests:\n{requests}"
    if kind == "ResourceClaimTemplate":
        body = "  spec:\n" + "\n".join("  " + line for line in body.splitlines())
    return f"apiVersion: resource.k8s.io/{version}\nkind: {kind}\nmetadata: {{name: c}}\nspec:\n{body}\n"


def test_a_correct_v1_claim_has_no_findings() -> None:
    assert lint(GOOD_V1) == []


@pytest.mark.parametrize("version", ["v1", "v1beta2"])
def test_misspelt_field_is_named_with_a_suggestion_and_the_valid_fields(version: str) -> None:
    found = lint(claim("    - name: gpu\n      exactly: {deviceClass: gpu.dra-driver.dev}\n", version))
    by_field = {f.field: f.message for f in found}
    message = by_field["spec.devices.requests[0].exactly.deviceClass"]
    assert "did you mean 'deviceClassName'?" in message and "valid fields: adminAccess, allocationMode" in message
    assert "required" in by_field["spec.devices.requests[0].exactly.deviceClassName"]


def test_v1beta1_request_fields_sit_on_the_request() -> None:
    text = claim("    - name: gpu\n      deviceClassName: gpu.dra-driver.dev\n      count: 2\n", "v1beta1")
    assert lint(text) == []


def test_v1beta1_shape_in_a_v1_manifest_says_fields_belong_inside_exactly() -> None:
    found = lint(claim("    - name: gpu\n      deviceClassName: gpu.dra-driver.dev\n", "v1"))
    messages = {f.field: f.message for f in found}
    assert "unknown field in DeviceRequest" in messages["spec.devices.requests[0].deviceClassName"]
    assert "deviceClassName belong inside `exactly`" in messages["spec.devices.requests[0]"]


def test_v1_shape_in_a_v1beta1_manifest_is_refused() -> None:
    found = lint(claim("    - name: gpu\n      exactly: {deviceClassName: gpu.dra-driver.dev}\n", "v1beta1"))
    assert fields(found) == ["spec.devices.requests[0].deviceClassName", "spec.devices.requests[0].exactly"]


def test_v1beta1_first_available_cannot_be_mixed_with_exact_fields() -> None:
    text = claim(
        "    - name: gpu\n      count: 1\n      firstAvailable:\n      - {name: a, deviceClassName: gpu.dra-driver.dev}\n",
        "v1beta1",
    )
    [finding] = lint(text)
    assert (
        finding.field == "spec.devices.requests[0]"
        and "count cannot be set together with firstAvailable" in finding.message
    )


def test_wrong_types_say_what_was_expected_and_what_was_found() -> None:
    text = claim(
        "    - name: gpu\n      exactly: {deviceClassName: gpu.dra-driver.dev, count: '2', adminAccess: yes-please}\n"
    )
    messages = {f.field: f.message for f in lint(text)}
    assert messages["spec.devices.requests[0].exactly.count"] == 'must be an integer, got string "2"'
    assert messages["spec.devices.requests[0].exactly.adminAccess"].startswith("must be a boolean")


def test_unknown_enum_value_lists_the_supported_ones() -> None:
    text = claim("    - name: gpu\n      exactly: {deviceClassName: gpu.dra-driver.dev, allocationMode: Exact}\n")
    [finding] = lint(text)
    assert finding.message == 'unsupported value string "Exact"; supported values: "ExactCount", "All"'


def test_count_rules_follow_the_allocation_mode() -> None:
    text = claim(
        "    - name: a\n      exactly: {deviceClassName: gpu.dra-driver.dev, count: 0}\n"
        "    - name: b\n      exactly: {deviceClassName: gpu.dra-driver.dev, allocationMode: All, count: 2}\n"
    )
    messages = {f.field: f.message for f in lint(text)}
    assert messages == {
        "spec.devices.requests[0].exactly.count": "must be greater than zero, got 0",
        "spec.devices.requests[1].exactly.count": "must not be specified when allocationMode is 'All'",
    }


def test_exactly_and_first_available_together_are_refused() -> None:
    text = claim(
        "    - name: gpu\n      exactly: {deviceClassName: gpu.dra-driver.dev}\n"
        "      firstAvailable: [{name: a, deviceClassName: gpu.dra-driver.dev}]\n"
    )
    [finding] = lint(text)
    assert "but both are set" in finding.message


def test_request_names_must_be_unique_dns_labels() -> None:
    text = claim(
        "    - name: GPU_0\n      exactly: {deviceClassName: gpu.dra-driver.dev}\n"
        "    - name: GPU_0\n      exactly: {deviceClassName: gpu.dra-driver.dev}\n"
    )
    messages = [f.message for f in lint(text)]
    assert any("duplicate request name 'GPU_0'" in m for m in messages)
    assert any("is not a DNS label" in m for m in messages)


def test_config_and_constraint_references_must_name_requests_or_subrequests() -> None:
    text = GOOD_V1.replace("requests: [small/mig]", "requests: [small/tiny]").replace(
        "requests: [gpu, small]", "requests: [gpu, big]"
    )
    messages = {f.field: f.message for f in lint(text)}
    assert set(messages) == {"spec.devices.constraints[0].requests[1]", "spec.devices.config[0].requests[0]"}
    assert "requests: gpu, small, small/mig, small/whole" in messages["spec.devices.config[0].requests[0]"]


def test_constraint_needs_exactly_one_fully_qualified_attribute() -> None:
    text = GOOD_V1.replace("matchAttribute: resource.kubernetes.io/pcieRoot", "matchAttribute: pcieRoot")
    [finding] = lint(text)
    assert finding.field == "spec.devices.constraints[0].matchAttribute" and "not fully qualified" in finding.message


def test_template_paths_start_at_spec_spec() -> None:
    text = claim(
        "    - name: gpu\n      exactly: {deviceClassName: gpu.dra-driver.dev, cout: 1}\n", kind="ResourceClaimTemplate"
    )
    assert fields(lint(text)) == ["spec.spec.devices.requests[0].exactly.cout"]


def test_device_class_needs_a_name_and_knows_its_fields() -> None:
    text = "apiVersion: resource.k8s.io/v1\nkind: DeviceClass\nmetadata: {}\nspec:\n  selector: []\n"
    assert fields(lint(text)) == ["metadata.name", "spec.selector"]


def test_missing_spec_is_required() -> None:
    assert fields(lint("apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {name: x}\n")) == ["spec"]


def test_other_kinds_are_skipped_and_unknown_resource_versions_reported() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {bogus: 1}\n---\n"
        "apiVersion: resource.k8s.io/v1alpha3\nkind: ResourceClaim\nmetadata: {name: x}\nspec: {}\n"
    )
    [finding] = lint(text)
    assert finding.document == 1 and "resource.k8s.io/v1alpha3 is not linted" in finding.message


def test_too_many_alternatives_are_reported_with_the_limit() -> None:
    alternatives = "".join(f"      - {{name: a{i}, deviceClassName: gpu.dra-driver.dev}}\n" for i in range(9))
    [finding] = lint(claim(f"    - name: gpu\n      firstAvailable:\n{alternatives}"))
    assert finding.message == "too many items: 9, at most 8 allowed"


def test_capacity_requests_must_be_quantities() -> None:
    text = claim(
        "    - name: gpu\n      exactly:\n        deviceClassName: shared.dra-driver.dev\n        capacity: {requests: {memory: 10GB}}\n"
    )
    [finding] = lint(text)
    assert finding.field == "spec.devices.requests[0].exactly.capacity.requests.memory"
    assert "is not a quantity" in finding.message


def test_findings_carry_the_line_of_the_field() -> None:
    [finding] = lint(
        claim("    - name: gpu\n      exactly:\n        deviceClassName: gpu.dra-driver.dev\n        count: -1\n")
    )
    assert finding.line == 10 and finding.location == "test.yaml:10"
