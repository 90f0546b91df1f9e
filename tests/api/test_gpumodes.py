"""NodeGpuModes: strict decoding naming the field, rendering back, precedence over the PartitioningConfig."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import ConfigError
from api.gpumodes import (
    API_VERSION,
    KIND,
    Condition,
    GpuModeSpec,
    GpuModeStatus,
    NodeGpuModesSpec,
    NodeGpuModesStatus,
    mode_for,
    parse_object,
    parse_spec,
    parse_status,
    render_object,
    render_spec,
    render_status,
)
from api.partitioning import Mig, PartitioningConfig, Shared, TimeSlice, Whole, parse_config

U0 = "GPU-8f6c2b1e-0000-4000-8000-000000000000"
U1 = "GPU-8f6c2b1e-0000-4000-8000-000000000001"
T = "2026-01-01T00:00:00Z"


def test_spec_round_trips_through_render() -> None:
    spec = NodeGpuModesSpec(
        (GpuModeSpec(U0, TimeSlice(4)), GpuModeSpec(U1, Mig(), ("3g.20gb", "2g.10gb", "1g.5gb+me")))
    )
    assert parse_spec(render_spec(spec)) == spec
    assert render_spec(spec)["gpus"][0] == {"uuid": U0, "mode": "timeslice:4"}


def test_empty_or_missing_spec_names_no_gpu() -> None:
    assert parse_spec(None) == NodeGpuModesSpec()
    assert parse_spec({}) == NodeGpuModesSpec()
    assert parse_spec({"gpus": []}) == NodeGpuModesSpec()


def test_modes_are_normalised_like_partitioning_config() -> None:
    spec = parse_spec({"gpus": [{"uuid": U0, "mode": "timeslice:004"}]})
    assert spec.gpus[0].mode == TimeSlice(4)
    assert render_spec(spec)["gpus"][0]["mode"] == "timeslice:4"


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ([], "spec", "mapping"),
        ({"gpu": []}, "spec.gpu", "unknown field"),
        ({"gpus": {}}, "spec.gpus", "must be a list"),
        ({"gpus": [{"mode": "whole"}]}, "spec.gpus[0].uuid", "required"),
        ({"gpus": [{"uuid": U0}]}, "spec.gpus[0].mode", "required"),
        ({"gpus": [{"uuid": "0", "mode": "whole"}]}, "spec.gpus[0].uuid", "GPU UUID"),
        ({"gpus": [{"uuid": 7, "mode": "whole"}]}, "spec.gpus[0].uuid", "must be a string"),
        ({"gpus": [{"uuid": U0, "mode": "timeslice:1"}]}, "spec.gpus[0].mode", "2..64"),
        ({"gpus": [{"uuid": U0, "mode": "mps"}]}, "spec.gpus[0].mode", "valid modes"),
        ({"gpus": [{"uuid": U0, "mode": "whole", "migLayout": ["1g.5gb"]}]}, "spec.gpus[0].migLayout", "only with"),
        ({"gpus": [{"uuid": U0, "mode": "mig", "migLayout": []}]}, "spec.gpus[0].migLayout", "at least one"),
        ({"gpus": [{"uuid": U0, "mode": "mig", "migLayout": ["1g.5gb"] * 8}]}, "spec.gpus[0].migLayout", "at most 7"),
        ({"gpus": [{"uuid": U0, "mode": "mig", "migLayout": ["big"]}]}, "spec.gpus[0].migLayout[0]", "MIG profile"),
        ({"gpus": [{"uuid": U0, "mode": "mig", "extra": 1}]}, "spec.gpus[0].extra", "unknown field"),
        (
            {"gpus": [{"uuid": U0, "mode": "whole"}, {"uuid": U0, "mode": "mig"}]},
            "spec.gpus[1].uuid",
            "listed twice",
        ),
    ],
)
def test_bad_spec_is_refused_naming_the_field(raw: Any, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_spec(raw)
    assert err.value.field == field
    assert words in str(err.value)


def test_status_round_trips_through_render() -> None:
    status = NodeGpuModesStatus(
        3,
        (
            GpuModeStatus(U0, TimeSlice(4), "Applied", T),
            GpuModeStatus(U1, Whole(), "Pending", T, reason="claim ns/a is allocated or prepared on it"),
        ),
        (Condition("Applied", "False", "NotApplied", "1 GPU(s) not applied", T, 3),),
    )
    assert parse_status(render_status(status)) == status


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"gpus": [{"uuid": U0, "mode": "whole", "state": "Done", "lastTransitionTime": T}]}, "status.gpus[0].state"),
        ({"gpus": [{"uuid": U0, "mode": "whole", "state": "Applied"}]}, "status.gpus[0].lastTransitionTime"),
        (
            {"gpus": [{"uuid": U0, "mode": "whole", "state": "Applied", "lastTransitionTime": "yesterday"}]},
            "status.gpus[0].lastTransitionTime",
        ),
        ({"observedGeneration": -1}, "status.observedGeneration"),
        (
            {"conditions": [{"type": "Applied", "status": "Yes", "reason": "x", "lastTransitionTime": T}]},
            "status.conditions[0].status",
        ),
    ],
)
def test_bad_status_is_refused_naming_the_field(raw: Any, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_status(raw)
    assert err.value.field == field


def test_object_carries_name_generation_and_both_halves() -> None:
    raw = render_object("node-1", NodeGpuModesSpec((GpuModeSpec(U0, Shared()),)))
    assert raw["apiVersion"] == API_VERSION and raw["kind"] == KIND
    raw["metadata"] |= {"generation": 2, "resourceVersion": "17"}
    obj = parse_object(raw)
    assert (obj.name, obj.generation, obj.resource_version) == ("node-1", 2, "17")
    assert obj.spec.for_gpu(U0) == GpuModeSpec(U0, Shared())
    assert obj.status == NodeGpuModesStatus()
    with pytest.raises(ConfigError) as err:
        parse_object(raw | {"kind": "Other"})
    assert err.value.field == "kind"


def test_spec_entries_win_over_partitioning_config_for_the_gpus_they_name() -> None:
    config = parse_config({"apiVersion": API_VERSION, "kind": "PartitioningConfig", "defaultMode": "mig"})
    spec = NodeGpuModesSpec((GpuModeSpec(U0, TimeSlice(2)),))
    assert mode_for(spec, config, {}, 0, U0, "A100").mode == TimeSlice(2)
    assert mode_for(spec, config, {}, 1, U1, "A100") == GpuModeSpec(U1, Mig())
    assert mode_for(None, PartitioningConfig(), {}, 0, U0, "A100") == GpuModeSpec(U0, Whole())
