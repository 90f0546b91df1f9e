"""``ParsedSlices``: a slice is parsed once per uid and resourceVersion, and a parsed cluster is the same
as a freshly parsed one."""

from __future__ import annotations

import copy
from typing import Any

from dra_driver.structured import cluster_state, parse_slice
from dra_driver.structured.model import Slice
from dra_driver.structured.slicememo import ParsedSlices

Obj = dict[str, Any]


def _shape(s: Slice) -> tuple[object, ...]:
    """What a parsed slice says (devices compare by identity)."""
    devices = tuple((d.name, d.driver, dict(d.attributes), dict(d.capacity)) for d in s.devices)
    return s.name, s.driver, s.pool, s.generation, s.node, devices, s.shared_counters


def _slice(name: str, uid: str | None = "u1", version: str | None = "5", devices: int = 2) -> Obj:
    meta: Obj = {"name": name}
    if uid is not None:
        meta["uid"] = uid
    if version is not None:
        meta["resourceVersion"] = version
    return {
        "metadata": meta,
        "spec": {
            "driver": "d.example.com",
            "pool": {"name": "node-a", "generation": 1, "resourceSliceCount": 1},
            "nodeName": "node-a",
            "devices": [{"name": f"dev-{i}", "attributes": {"i": {"int": i}}} for i in range(devices)],
        },
    }


def test_the_same_uid_and_version_is_parsed_once_and_shared() -> None:
    memo = ParsedSlices()
    first = memo(_slice("s"))
    again = memo(copy.deepcopy(_slice("s")))  # another decoding of the same object
    assert again is first
    assert memo.parses == 1
    assert _shape(first) == _shape(parse_slice(_slice("s")))


def test_a_new_version_is_parsed_again() -> None:
    memo = ParsedSlices()
    old = memo(_slice("s", version="5", devices=2))
    new = memo(_slice("s", version="6", devices=3))
    assert memo.parses == 2
    assert len(old.devices) == 2 and len(new.devices) == 3


def test_objects_without_uid_or_version_are_parsed_every_time_and_not_kept() -> None:
    memo = ParsedSlices()
    for obj in (_slice("a", uid=None), _slice("b", version=None)):
        assert memo(obj) is not memo(obj)
    assert memo.parses == 0 and memo.size == 0


def test_retain_forgets_slices_the_cluster_no_longer_has() -> None:
    memo = ParsedSlices()
    kept, gone = _slice("a", uid="ua"), _slice("b", uid="ub")
    memo(kept), memo(gone)
    memo.retain([kept])
    assert memo.size == 1
    memo(gone)
    assert memo.parses == 3  # parsed again: it had been forgotten


def test_a_cluster_parsed_through_the_memo_equals_a_fresh_one() -> None:
    slices = [_slice(f"s{i}", uid=f"u{i}") for i in range(3)]
    memo = ParsedSlices()
    cluster_state(slices, [], (), memo)
    remembered, fresh = cluster_state(slices, [], (), memo), cluster_state(slices, [])
    assert [_shape(s) for s in remembered.slices] == [_shape(s) for s in fresh.slices]
    assert memo.parses == 3
