"""The opaque-config decoder on fuzzed input: a config or a ConfigError naming a field, never anything else;
normalised configs decode back to themselves."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from api.config import GpuConfig, MigDeviceConfig, Mps, TimeSlicing, decode_configs, decode_opaque
from api.config.quantity import MAX_BYTES
from api.config.strict import load_yaml_documents
from api.errors import ConfigError
from tests.fuzz.strategies import FUZZ, json_values, parameters, raw_json, yaml_texts

P = "spec.devices.config[0].opaque.parameters"


def decoded_or_refused(raw: Any) -> GpuConfig | MigDeviceConfig | ConfigError:
    try:
        return decode_opaque(raw, P)
    except ConfigError as e:
        assert e.field.startswith(P), e.field
        return e


@settings(FUZZ, max_examples=400)
@given(parameters)
def test_any_parameters_mapping_decodes_or_is_refused_naming_a_field(raw: dict[str, Any]) -> None:
    result = decoded_or_refused(raw)
    if not isinstance(result, ConfigError):
        assert decode_opaque(result.to_parameters(), P) == result


@settings(FUZZ, max_examples=250)
@given(raw_json())
def test_any_raw_json_decodes_or_is_refused_naming_a_field(raw: bytes) -> None:
    decoded_or_refused(raw)


@settings(FUZZ, max_examples=150)
@given(json_values)
def test_any_json_value_decodes_or_is_refused_naming_a_field(raw: Any) -> None:
    decoded_or_refused(raw)


@settings(FUZZ, max_examples=100)
@given(st.lists(st.one_of(json_values, parameters.map(lambda p: {"opaque": {"driver": "d", "parameters": p}}))))
def test_any_config_list_decodes_or_is_refused_naming_an_entry(raw: list[Any]) -> None:
    try:
        decode_configs(raw, "d", "spec.config", "FromClass")
    except ConfigError as e:
        assert e.field.startswith("spec.config[")


sizes = st.integers(1, MAX_BYTES)
mps = st.builds(
    Mps,
    st.none() | st.integers(1, 100),
    st.none() | sizes,
    st.dictionaries(st.sampled_from(["0", "1", "7", "GPU-a1", "MIG-b/2"]), sizes, max_size=3).map(
        lambda d: tuple(sorted(d.items()))
    ),
)
configs = st.one_of(
    st.builds(
        GpuConfig, st.none() | st.builds(TimeSlicing, st.sampled_from(["Default", "Short", "Medium", "Long"])) | mps
    ),
    st.builds(MigDeviceConfig, st.none() | mps),
)


@settings(FUZZ, max_examples=200)
@given(configs)
def test_every_config_round_trips_through_its_parameters_and_json(config: GpuConfig | MigDeviceConfig) -> None:
    assert decode_opaque(config.to_parameters(), P) == config
    assert decode_opaque(json.dumps(config.to_parameters()).encode(), P) == config


@settings(FUZZ, max_examples=300)
@given(yaml_texts)
def test_any_yaml_text_loads_or_is_a_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        load_yaml_documents(text)
