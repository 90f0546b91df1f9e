"""What we render is valid by the CDI project's JSON schema and uses only keys CDI loaders know."""

from __future__ import annotations

import pytest

from dra_driver.cdi import Spec
from tests.cdi.schema_check import schema_errors
from tests.cdi.specs import full, minimal


@pytest.mark.parametrize("spec", [minimal(), full()], ids=["minimal", "full"])
def test_rendered_spec_is_schema_valid(spec: Spec) -> None:
    assert schema_errors(spec.to_dict()) == []


def test_schema_check_catches_a_broken_document() -> None:
    doc = full().to_dict()
    doc["devices"][0]["containerEdits"]["deviceNodes"][0]["major"] = "195"
    doc["containerEdits"]["netDevice"] = []
    assert schema_errors(doc) == [
        "devices/0/containerEdits/deviceNodes/0/major: '195' is not of type 'integer'",
        "containerEdits.netDevice: unknown field",
    ]
