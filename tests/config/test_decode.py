"""decode_opaque: strict decoding, normalisation and validation of GpuConfig / MigDeviceConfig."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.config import API_VERSION, GpuConfig, MigDeviceConfig, Mps, TimeSlicing, decode_opaque
from api.errors import ConfigError

P = "spec.config[0].opaque.parameters"


def gpu(sharing: Any = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "GpuConfig", **extra}
    if sharing is not None:
        doc["sharing"] = sharing
    return doc


def mig(sharing: Any = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "MigDeviceConfig"}
    if sharing is not None:
        doc["sharing"] = sharing
    return doc


def error(parameters: Any) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        decode_opaque(parameters, P)
    return e.value


def test_config_without_sharing_means_no_sharing() -> None:
    assert decode_opaque(gpu(), P) == GpuConfig(None)
    assert decode_opaque(mig(), P) == MigDeviceConfig(None)
    assert decode_opaque(gpu({}), P) == GpuConfig(None)
    assert decode_opaque(gpu(None), P) == GpuConfig(None)


def test_time_slicing_interval_defaults_to_default() -> None:
    assert decode_opaque(gpu({"strategy": "TimeSlicing"}), P) == GpuConfig(TimeSlicing("Default"))
    config = decode_opaque(gpu({"strategy": "TimeSlicing", "timeSlicingConfig": {}}), P)
    assert config == GpuConfig(TimeSlicing("Default"))


@pytest.mark.parametrize("interval", ["Default", "Short", "Medium", "Long"])
def test_every_interval_is_accepted(interval: str) -> None:
    config = decode_opaque(gpu({"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": interval}}), P)
    assert config == GpuConfig(TimeSlicing(interval))  # type: ignore[arg-type]


def test_mps_limits_are_read_as_bytes() -> None:
    sharing = {
        "strategy": "MPS",
        "mpsConfig": {
            "defaultActiveThreadPercentage": 50,
            "defaultPinnedDeviceMemoryLimit": "10Gi",
            "defaultPerDevicePinnedMemoryLimit": {"GPU-1234-abcd": "1.5Gi", "0": "512Mi"},
        },
    }
    expected = Mps(50, 10 << 30, (("0", 512 << 20), ("GPU-1234-abcd", 3 << 29)))
    assert decode_opaque(gpu(sharing), P) == GpuConfig(expected)
    assert decode_opaque(mig(sharing), P) == MigDeviceConfig(expected)


def test_mps_without_settings_leaves_daemon_defaults() -> None:
    assert decode_opaque(mig({"strategy": "MPS"}), P) == MigDeviceConfig(Mps())


def test_raw_json_bytes_and_text_decode_like_a_mapping() -> None:
    doc = gpu({"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Long"}})
    assert decode_opaque(json.dumps(doc).encode(), P) == decode_opaque(doc, P) == decode_opaque(json.dumps(doc), P)


@pytest.mark.parametrize(
    "config",
    [
        GpuConfig(),
        GpuConfig(TimeSlicing("Medium")),
        GpuConfig(Mps(25, 1 << 30, (("1", 3 << 30),))),
        MigDeviceConfig(Mps(None, 5 << 30)),
        MigDeviceConfig(Mps()),
    ],
)
def test_normalised_parameters_decode_back_unchanged(config: GpuConfig | MigDeviceConfig) -> None:
    assert decode_opaque(config.to_parameters(), P) == config
    assert decode_opaque(json.dumps(config.to_parameters()), P) == config


def test_misspelt_field_is_named_with_the_valid_ones() -> None:
    e = error(gpu({"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentag": 5}}))
    assert e.field == f"{P}.sharing.mpsConfig.defaultActiveThreadPercentag"
    assert "unknown field; valid fields: defaultActiveThreadPercentage, defaultPerDevicePinnedMemoryLimit" in str(e)


def test_unknown_top_level_field_is_an_error() -> None:
    assert error(gpu(metadata={"name": "x"})).field == f"{P}.metadata"


def test_duplicate_key_in_raw_json_is_an_error_naming_its_path() -> None:
    raw = b'{"apiVersion": "%s", "kind": "GpuConfig", "sharing": {"strategy": "MPS", "strategy": "TimeSlicing"}}'
    e = error(raw % API_VERSION.encode())
    assert e.field == f"{P}.sharing.strategy"
    assert "duplicate key" in str(e)


def test_invalid_json_is_reported_with_its_position() -> None:
    e = error(b'{"apiVersion": ')
    assert e.field == P and "not valid JSON" in str(e) and "line 1" in str(e)


@pytest.mark.parametrize(
    ("parameters", "field", "words"),
    [
        (gpu({"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": "50"}}),
         "sharing.mpsConfig.defaultActiveThreadPercentage", 'must be an integer (1..100), got string "50"'),
        (gpu({"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": True}}),
         "sharing.mpsConfig.defaultActiveThreadPercentage", "got boolean true"),
        (gpu({"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 0}}),
         "sharing.mpsConfig.defaultActiveThreadPercentage", "1..100"),
        (gpu({"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 101}}),
         "sharing.mpsConfig.defaultActiveThreadPercentage", "1..100"),
        (gpu({"strategy": "MPS", "mpsConfig": {"defaultPinnedDeviceMemoryLimit": "ten gigs"}}),
         "sharing.mpsConfig.defaultPinnedDeviceMemoryLimit", "is not a quantity"),
        (gpu({"strategy": "MPS", "mpsConfig": {"defaultPinnedDeviceMemoryLimit": "0"}}),
         "sharing.mpsConfig.defaultPinnedDeviceMemoryLimit", "not positive"),
        (gpu({"strategy": "MPS", "mpsConfig": {"defaultPerDevicePinnedMemoryLimit": {"gpu0": "1Gi"}}}),
         "sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit.gpu0", "device index"),
        (gpu({"strategy": "MPS", "mpsConfig": {"defaultPerDevicePinnedMemoryLimit": ["1Gi"]}}),
         "sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit", "got list"),
        (gpu({"strategy": "Exclusive"}), "sharing.strategy", "unknown strategy 'Exclusive'; valid: TimeSlicing, MPS"),
        (gpu({"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Fast"}}),
         "sharing.timeSlicingConfig.interval", "valid: Default, Short, Medium, Long"),
        (gpu({"strategy": "TimeSlicing", "timeSlicingConfig": "Short"}), "sharing.timeSlicingConfig", "got string"),
        (gpu("TimeSlicing"), "sharing", "must be an object"),
        (gpu({"strategy": "TimeSlicing", "mpsConfig": {}}), "sharing.mpsConfig", "only allowed with strategy MPS"),
        (gpu({"strategy": "MPS", "timeSlicingConfig": {}}), "sharing.timeSlicingConfig",
         "only allowed with strategy TimeSlicing"),
        (gpu({"mpsConfig": {}}), "sharing.strategy", "required when mpsConfig is set"),
        (mig({"strategy": "TimeSlicing"}), "sharing.strategy", "TimeSlicing is not supported on MIG devices"),
        (mig({"strategy": "MPS", "timeSlicingConfig": {}}), "sharing.timeSlicingConfig", "valid fields: mpsConfig"),
        ({"kind": "GpuConfig"}, "apiVersion", "required; set apiVersion: gpu.dra-driver.dev/v1alpha1"),
        ({"apiVersion": "gpu.dra-driver.dev/v1", "kind": "GpuConfig"}, "apiVersion", "unsupported apiVersion"),
        ({"apiVersion": API_VERSION}, "kind", "required; set kind: one of GpuConfig, MigDeviceConfig"),
        ({"apiVersion": API_VERSION, "kind": "TpuConfig"}, "kind", "unknown kind string \"TpuConfig\""),
    ],
)  # fmt: skip
def test_invalid_parameters_name_the_field_and_say_why(parameters: Any, field: str, words: str) -> None:
    e = error(parameters)
    assert e.field == f"{P}.{field}"
    assert words in str(e)


@pytest.mark.parametrize("parameters", [[], "null", b"[1]", 5])
def test_parameters_that_are_not_an_object_are_refused(parameters: Any) -> None:
    e = error(parameters)
    assert e.field == P and "must be a GpuConfig or MigDeviceConfig object" in str(e)


def test_yaml_integer_device_keys_are_read_as_indices() -> None:
    config = decode_opaque(gpu({"strategy": "MPS", "mpsConfig": {"defaultPerDevicePinnedMemoryLimit": {0: "1Gi"}}}), P)
    assert config == GpuConfig(Mps(None, None, (("0", 1 << 30),)))
