"""Admission decisions: this driver's configs validated in every served version, everything else allowed."""

from __future__ import annotations

import copy
import json

import pytest

from controller.webhook import BadReview, decide
from tests.webhook.reviews import DRIVER, obj, opaque, parameters, review

KINDS = [("ResourceClaim", "spec"), ("ResourceClaimTemplate", "spec.spec")]
VERSIONS = ["v1", "v1beta2", "v1beta1"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("kind", "prefix"), KINDS)
def test_bad_strategy_is_denied_naming_the_field(kind: str, prefix: str, version: str) -> None:
    body = obj(kind, version, [opaque(parameters(strategy="Fast"))])
    decision = decide(review(kind, version, body), DRIVER)
    assert not decision.allowed
    assert decision.message.startswith(
        f"{prefix}.devices.config[0].opaque.parameters.sharing.strategy: unknown strategy 'Fast'"
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("kind", "prefix"), KINDS)
def test_good_config_is_allowed(kind: str, prefix: str, version: str) -> None:
    body = obj(kind, version, [opaque(parameters(strategy="MPS", mpsConfig={"defaultActiveThreadPercentage": 50}))])
    assert decide(review(kind, version, body), DRIVER).allowed


def test_other_drivers_configs_are_allowed_however_they_look() -> None:
    body = obj("ResourceClaim", "v1", [opaque({"anything": ["goes"]}, driver="net.example.com")])
    assert decide(review("ResourceClaim", "v1", body), DRIVER).allowed


def test_every_bad_entry_is_in_the_message() -> None:
    body = obj(
        "ResourceClaim",
        "v1",
        [
            opaque(parameters(strategy="MPS", mpsConfig={"defaultActiveThreadPercentage": "50"})),
            opaque({"kind": "GpuConfig"}),
        ],
    )
    message = decide(review("ResourceClaim", "v1", body), DRIVER).message
    assert (
        "spec.devices.config[0].opaque.parameters.sharing.mpsConfig.defaultActiveThreadPercentage: must be an integer"
        in message
    )
    assert "spec.devices.config[1].opaque.parameters.apiVersion: required" in message


def test_denial_is_an_admission_review_with_uid_and_invalid_status() -> None:
    body = obj("ResourceClaim", "v1", [opaque(parameters(strategy="Fast"))])
    answer = decide(review("ResourceClaim", "v1", body, uid="abc"), DRIVER).review()
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == "abc" and answer["response"]["allowed"] is False
    assert answer["response"]["status"]["code"] == 422 and answer["response"]["status"]["reason"] == "Invalid"


def test_allowed_review_has_no_status() -> None:
    answer = decide(review("ResourceClaim", "v1", obj("ResourceClaim", "v1", [])), DRIVER).review()
    assert answer["response"] == {"uid": "u-1", "allowed": True}


def test_update_that_changes_configs_is_validated_and_delete_is_not() -> None:
    body = obj("ResourceClaim", "v1", [opaque(parameters(strategy="Fast"))])
    assert not decide(review("ResourceClaim", "v1", body, operation="UPDATE"), DRIVER).allowed
    assert decide(review("ResourceClaim", "v1", None, operation="DELETE"), DRIVER).allowed


def test_update_of_an_object_admitted_before_the_webhook_is_allowed_if_configs_stay() -> None:
    body = obj("ResourceClaimTemplate", "v1", [opaque(parameters(strategy="Fast"))])
    raw = json.loads(review("ResourceClaimTemplate", "v1", body, operation="UPDATE"))
    raw["request"]["oldObject"] = copy.deepcopy(body)
    raw["request"]["object"]["metadata"]["finalizers"] = []  # e.g. a controller removing its finalizer
    assert decide(json.dumps(raw).encode(), DRIVER).allowed


def test_kinds_outside_resource_k8s_io_are_allowed() -> None:
    raw = json.loads(review("ResourceClaim", "v1", {"spec": {"devices": {"config": [opaque({})]}}}))
    raw["request"]["kind"]["group"] = "example.com"
    assert decide(json.dumps(raw).encode(), DRIVER).allowed


def test_device_class_configs_are_validated_if_a_rule_sends_them() -> None:
    body = {
        "metadata": {"name": "x"},
        "spec": {"config": [{"opaque": {"driver": DRIVER, "parameters": {"kind": "GpuConfig"}}}]},
    }
    decision = decide(review("DeviceClass", "v1", body), DRIVER)
    assert not decision.allowed and decision.message.startswith("spec.config[0].opaque.parameters.apiVersion: required")


def test_duplicate_key_in_parameters_is_denied_at_its_path() -> None:
    body = review("ResourceClaim", "v1", obj("ResourceClaim", "v1", [opaque(parameters(strategy="MPS"))]))
    duplicated = body.replace(b'"strategy": "MPS"', b'"strategy": "MPS", "strategy": "TimeSlicing"')
    decision = decide(duplicated, DRIVER)
    assert not decision.allowed
    assert decision.message.startswith("spec.devices.config[0].opaque.parameters.sharing.strategy: duplicate key")


def test_duplicate_key_in_another_drivers_parameters_is_not_ours_to_judge() -> None:
    body = review("ResourceClaim", "v1", obj("ResourceClaim", "v1", [opaque({"x": 1}, driver="net.example.com")]))
    assert decide(body.replace(b'"x": 1', b'"x": 1, "x": 2'), DRIVER).allowed


def test_a_driver_name_other_than_the_default_is_honoured() -> None:
    body = obj("ResourceClaim", "v1", [opaque(parameters(strategy="Fast"))])
    assert decide(review("ResourceClaim", "v1", body), "gpu.example.com").allowed


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "not an AdmissionReview"),
        (
            b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}',
            "expected apiVersion",
        ),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "no request.uid"),
        (b"[1]", "must be an object"),
    ],
)
def test_a_body_that_is_not_a_v1_review_is_a_bad_review(body: bytes, why: str) -> None:
    with pytest.raises(BadReview, match=why):
        decide(body, DRIVER)


def test_a_huge_memory_limit_is_denied_at_once_naming_the_field_and_the_range() -> None:
    sharing = {"strategy": "MPS", "mpsConfig": {"defaultPinnedDeviceMemoryLimit": "1e999999999"}}
    decision = decide(
        review("ResourceClaim", "v1", obj("ResourceClaim", "v1", [opaque(parameters(**sharing))])), DRIVER
    )
    assert not decision.allowed
    assert decision.message == (
        "spec.devices.config[0].opaque.parameters.sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: '1e999999999' is "
        "out of range: a quantity from 1 byte to 8Ei - 1 (9223372036854775807), e.g. 10Gi"
    )


def test_a_review_nested_past_the_recursion_limit_is_a_bad_review() -> None:
    body = review("ResourceClaim", "v1", obj("ResourceClaim", "v1", [opaque({"x": "DEEP"}, driver="net.example.com")]))
    with pytest.raises(BadReview, match="nested too deeply"):
        decide(body.replace(b'"DEEP"', b"[" * 50_000 + b"]" * 50_000), DRIVER)


def test_an_object_may_be_as_deep_as_the_linter_allows_but_no_deeper() -> None:
    def deep(levels: int) -> bytes:  # another driver's parameters, from the object's root down
        body = review("ResourceClaim", "v1", obj("ResourceClaim", "v1", [opaque({"x": "DEEP"}, driver="n.example")]))
        inner = levels - 7  # object > spec > devices > config > [0] > opaque > parameters
        return body.replace(b'"DEEP"', b"[" * inner + b"]" * inner)

    assert decide(deep(64), DRIVER).allowed
    with pytest.raises(
        BadReview, match=r"request\.object\.spec\.devices\.config\[0\]\.opaque\.parameters\.x\[0\].*nested"
    ):
        decide(deep(65), DRIVER)


def test_a_body_over_3_mib_is_a_bad_review() -> None:
    with pytest.raises(BadReview, match="too large"):
        decide(b" " * (3 * 1024 * 1024 + 1), DRIVER)


def test_integers_too_long_to_convert_are_a_bad_review_naming_the_field() -> None:
    body = review("ResourceClaim", "v1", obj("ResourceClaim", "v1", []))
    with pytest.raises(BadReview, match=r"request\.generation: .* is out of range"):
        decide(body.replace(b'"name": "c"', b'"generation": ' + b"9" * 5000, 1), DRIVER)


def test_thousands_of_config_entries_are_each_checked_once() -> None:
    entries = [opaque({"x": 1}, driver="other.example")] * 20_000 + [opaque(parameters(strategy="Fast"))]
    decision = decide(review("ResourceClaim", "v1", obj("ResourceClaim", "v1", entries)), DRIVER)
    assert decision.message.startswith(
        "spec.devices.config[20000].opaque.parameters.sharing.strategy: unknown strategy"
    )


def test_every_duplicate_key_in_our_parameters_is_denied() -> None:
    body = review("ResourceClaim", "v1", obj("ResourceClaim", "v1", [opaque(parameters(strategy="MPS"))] * 2))
    duplicated = body.replace(b'"strategy": "MPS"', b'"strategy": "MPS", "strategy": "MPS"')
    message = decide(duplicated, DRIVER).message
    assert "config[0].opaque.parameters.sharing.strategy: duplicate key" in message
    assert "config[1].opaque.parameters.sharing.strategy: duplicate key" in message


def test_a_duplicate_key_outside_the_object_is_a_bad_review() -> None:
    body = review("ResourceClaim", "v1", obj("ResourceClaim", "v1", []))
    with pytest.raises(BadReview, match=r"request\.uid: duplicate key"):
        decide(body.replace(b'"uid": "u-1"', b'"uid": "u-1", "uid": "u-2"'), DRIVER)
