"""Config resolution: class < claim precedence, last match wins, subrequests, other drivers, kind fit."""

from __future__ import annotations

from typing import Any

import pytest

from api.config import (
    API_VERSION,
    GpuConfig,
    MigDeviceConfig,
    Mps,
    TimeSlicing,
    decode_configs,
    resolve_allocation,
    resolve_configs,
)
from api.errors import ConfigError

DRIVER = "gpu.dra-driver.dev"


def ts(interval: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "GpuConfig",
        "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": interval}},
    }


def mps(threads: int) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "MigDeviceConfig",
        "sharing": {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": threads}},
    }


def entry(source: str, parameters: Any, requests: list[str] | None = None, driver: str = DRIVER) -> dict[str, Any]:
    out: dict[str, Any] = {"source": source, "opaque": {"driver": driver, "parameters": parameters}}
    if requests is not None:
        out["requests"] = requests
    return out


def test_claim_config_wins_over_class_config() -> None:
    resolved = resolve_allocation([entry("FromClass", ts("Short"), ["gpu"]), entry("FromClaim", ts("Long"))], DRIVER)
    assert resolved.config_for("gpu", "gpu") == GpuConfig(TimeSlicing("Long"))


def test_claim_config_wins_even_when_listed_before_class_config() -> None:
    resolved = resolve_allocation([entry("FromClaim", ts("Long")), entry("FromClass", ts("Short"))], DRIVER)
    assert resolved.config_for("gpu", "gpu") == GpuConfig(TimeSlicing("Long"))


def test_last_matching_claim_config_wins() -> None:
    configs = [
        entry("FromClaim", ts("Short")),
        entry("FromClaim", ts("Medium"), ["gpu"]),
        entry("FromClaim", ts("Long")),
    ]
    assert resolve_allocation(configs, DRIVER).config_for("gpu", "gpu") == GpuConfig(TimeSlicing("Long"))


def test_config_naming_another_request_does_not_apply() -> None:
    resolved = resolve_allocation(
        [entry("FromClaim", ts("Short"), ["a"]), entry("FromClaim", ts("Long"), ["b"])], DRIVER
    )
    assert resolved.config_for("a", "gpu") == GpuConfig(TimeSlicing("Short"))
    assert resolved.config_for("b", "timeslice") == GpuConfig(TimeSlicing("Long"))
    assert resolved.config_for("c", "gpu") == GpuConfig()


def test_main_request_config_applies_to_its_subrequests() -> None:
    resolved = resolve_allocation([entry("FromClaim", ts("Short"), ["gpu"])], DRIVER)
    assert resolved.config_for("gpu/big", "gpu") == GpuConfig(TimeSlicing("Short"))
    assert resolved.config_for("gpus/big", "gpu") == GpuConfig()


def test_subrequest_config_applies_only_to_that_subrequest() -> None:
    resolved = resolve_allocation([entry("FromClaim", ts("Short"), ["gpu/big"])], DRIVER)
    assert resolved.config_for("gpu/big", "gpu") == GpuConfig(TimeSlicing("Short"))
    assert resolved.config_for("gpu/small", "gpu") == GpuConfig()
    assert resolved.config_for("gpu", "gpu") == GpuConfig()


def test_other_drivers_configs_are_ignored_even_when_invalid_for_us() -> None:
    configs = [entry("FromClaim", ts("Short")), entry("FromClaim", {"anything": True}, driver="nic.example.com")]
    assert resolve_allocation(configs, DRIVER).config_for("gpu", "gpu") == GpuConfig(TimeSlicing("Short"))


def test_entries_without_opaque_are_ignored() -> None:
    assert resolve_allocation([{"source": "FromClaim", "requests": ["gpu"]}], DRIVER).entries == ()


def test_no_config_gives_the_default_for_the_device_type() -> None:
    resolved = resolve_allocation(None, DRIVER)
    assert resolved.config_for("gpu", "gpu") == GpuConfig()
    assert resolved.config_for("gpu", "shared") == GpuConfig()
    assert resolved.config_for("gpu", "mig") == MigDeviceConfig()


def test_wrong_kind_naming_the_request_is_an_error_naming_the_entry() -> None:
    resolved = resolve_allocation(
        [entry("FromClass", mps(10), ["gpu"]), entry("FromClaim", ts("Long"), ["mig"])], DRIVER
    )
    with pytest.raises(ConfigError) as e:
        resolved.config_for("mig", "mig")
    assert e.value.field == "status.allocation.devices.config[1].opaque.parameters.kind"
    assert "GpuConfig cannot configure request 'mig'" in str(e.value) and "MigDeviceConfig" in str(e.value)
    with pytest.raises(ConfigError, match=r"config\[0\].*MigDeviceConfig cannot configure request 'gpu'"):
        resolved.config_for("gpu", "gpu")


def test_config_for_all_requests_configures_only_devices_it_fits() -> None:
    configs = [entry("FromClaim", mps(20)), entry("FromClaim", ts("Medium"))]
    resolved = resolve_allocation(configs, DRIVER)
    assert resolved.config_for("anything", "mig") == MigDeviceConfig(Mps(20))
    assert resolved.config_for("anything", "timeslice") == GpuConfig(TimeSlicing("Medium"))


def test_main_request_config_skips_subrequest_devices_of_the_other_kind() -> None:
    resolved = resolve_allocation([entry("FromClaim", ts("Short"), ["gpu"])], DRIVER)
    assert resolved.config_for("gpu/slice", "mig") == MigDeviceConfig()
    with pytest.raises(ConfigError):
        resolved.config_for("gpu", "mig")


def test_invalid_parameters_are_reported_with_the_allocation_path() -> None:
    bad = {"apiVersion": API_VERSION, "kind": "GpuConfig", "sharing": {"strategy": "mps"}}
    with pytest.raises(ConfigError) as e:
        resolve_allocation([entry("FromClass", ts("Short")), entry("FromClaim", bad)], DRIVER)
    assert e.value.field == "status.allocation.devices.config[1].opaque.parameters.sharing.strategy"


@pytest.mark.parametrize(
    ("item", "field", "words"),
    [
        ({"opaque": {"driver": DRIVER, "parameters": ts("Short")}}, "config[0].source", "required"),
        (entry("FromNowhere", ts("Short")), "config[0].source", "valid: FromClass, FromClaim"),
        (entry("FromClaim", ts("Short"), "gpu"), "config[0].requests", "must be a list"),  # type: ignore[arg-type]
        ({"source": "FromClaim", "opaque": {"driver": DRIVER}}, "config[0].opaque.parameters", "required"),
        ("gpu", "config[0]", "must be an object"),
    ],
)
def test_malformed_entries_name_the_field(item: Any, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        resolve_allocation([item], DRIVER, "config")
    assert e.value.field == field and words in str(e.value)


def test_class_and_claim_lists_given_separately_keep_class_below_claim() -> None:
    class_configs = [{"opaque": {"driver": DRIVER, "parameters": ts("Short")}}]
    claim_configs = [{"requests": ["other"], "opaque": {"driver": DRIVER, "parameters": ts("Long")}}]
    resolved = resolve_configs(class_configs, claim_configs, DRIVER)
    assert [(e.source, e.field) for e in resolved.entries] == [
        ("FromClass", "spec.config[0]"),
        ("FromClaim", "spec.devices.config[0]"),
    ]
    assert resolved.config_for("gpu", "gpu") == GpuConfig(TimeSlicing("Short"))
    assert resolved.config_for("other", "gpu") == GpuConfig(TimeSlicing("Long"))


def test_device_class_config_is_validated_with_its_own_path() -> None:
    bad = {"apiVersion": API_VERSION, "kind": "MigDeviceConfig", "sharing": {"strategy": "TimeSlicing"}}
    with pytest.raises(ConfigError) as e:
        decode_configs([{"opaque": {"driver": DRIVER, "parameters": bad}}], DRIVER, "spec.config", "FromClass")
    assert e.value.field == "spec.config[0].opaque.parameters.sharing.strategy"


def test_raw_json_parameters_in_an_entry_are_checked_for_duplicate_keys() -> None:
    raw = f'{{"apiVersion": "{API_VERSION}", "kind": "GpuConfig", "kind": "MigDeviceConfig"}}'
    with pytest.raises(ConfigError) as e:
        resolve_allocation([entry("FromClaim", raw)], DRIVER)
    assert e.value.field == "status.allocation.devices.config[0].opaque.parameters.kind"
