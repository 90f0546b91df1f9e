"""A parsed device is what ``Device(...)`` would make (the parser skips the frozen dataclass's __init__)."""

from __future__ import annotations

import dataclasses

from dra_driver.structured.model import Device
from dra_driver.structured.parse import parse_slice


def _slice(*devices: dict[str, object]) -> dict[str, object]:
    return {
        "metadata": {"name": "s"},
        "spec": {"driver": "d.example", "pool": {"name": "p"}, "nodeName": "n", "devices": list(devices)},
    }


def test_every_field_is_set_as_the_constructor_would_and_plain_capacities_are_shared() -> None:
    plain = {"memory": {"value": "40Gi"}, "sms": {"value": 108}}
    raw = [
        {"name": "a", "attributes": {"x": {"int": 1}}, "capacity": plain, "bindingConditions": ["ready"]},
        {"name": "b", "capacity": {"memory": {"value": "40Gi"}, "sms": {"value": "108"}}, "allNodes": True},
        {"name": "c", "capacity": {"memory": {"value": "1", "requestPolicy": {"default": "1"}}}},
        {"name": "d", "taints": [{"key": "k", "effect": "NoSchedule"}], "consumesCounters": []},
    ]
    devices = parse_slice(_slice(*raw)).devices
    names = [f.name for f in dataclasses.fields(Device)]
    for device in devices:
        assert set(names) <= set(vars(device))
        rebuilt = Device(**{n: getattr(device, n) for n in names})
        assert all(getattr(rebuilt, n) == getattr(device, n) for n in names)
    a, b, c, d = devices
    assert a.binding_conditions == ("ready",) and a.capacity["sms"].value.nanos == 108 * 10**9
    assert a.capacity is b.capacity and b.node is not None and b.node.all_nodes
    assert c.capacity["memory"].policy is not None and c.capacity is not a.capacity
    assert d.capacity == {} and d.consumes_counters == () and d.taints[0].key == "k"
    assert a.plain_capacity and not c.plain_capacity and a.view.driver == "d.example"
