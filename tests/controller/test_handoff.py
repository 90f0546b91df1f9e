"""What the controller writes into NodeGpuModes, and how it reads pending pods."""

from __future__ import annotations

import json

from api import gpumodes
from api.partitioning import Mig, TimeSlice
from controller.handoff import desired
from controller.planner import Change
from controller.planner.candidates import Target
from controller.planner.world import HISTORY_ANNOTATION, pending_units
from tests.controller.conftest import claim, pod

GPU_A = "GPU-11111111-2222-3333-4444-555555555555"
GPU_B = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def test_a_new_object_names_the_changed_gpus_and_records_when() -> None:
    changes = [Change("node-1", 0, GPU_A, "whole", Target(TimeSlice(4)), ("ns/c",))]
    body = desired(None, "node-1", changes, 1000.0)
    parsed = gpumodes.parse_object(body)
    assert parsed.spec == gpumodes.NodeGpuModesSpec((gpumodes.GpuModeSpec(GPU_A, TimeSlice(4)),))
    assert json.loads(body["metadata"]["annotations"][HISTORY_ANNOTATION]) == {GPU_A: 1000.0}


def test_an_existing_object_keeps_its_other_gpus_history_and_version() -> None:
    existing = desired(None, "node-1", [Change("node-1", 0, GPU_A, "whole", Target(TimeSlice(2)), ())], 10.0)
    existing["metadata"]["resourceVersion"] = "42"
    layout = Target(Mig(), ("3g.20gb", "1g.5gb"))
    body = desired(existing, "node-1", [Change("node-1", 1, GPU_B, "whole", layout, ())], 20.0)
    assert body["metadata"]["resourceVersion"] == "42"  # the write conflicts if the object moved meanwhile
    assert body["spec"]["gpus"] == [
        {"uuid": GPU_A, "mode": "timeslice:2"},
        {"uuid": GPU_B, "mode": "mig", "migLayout": ["3g.20gb", "1g.5gb"]},
    ]
    assert json.loads(body["metadata"]["annotations"][HISTORY_ANNOTATION]) == {GPU_A: 10.0, GPU_B: 20.0}


def test_pending_units_are_unbound_pods_with_unallocated_claims_each_claim_once() -> None:
    c1, c2 = claim("c1"), claim("c2")
    bound = pod("bound", ["c1"])
    bound["spec"]["nodeName"] = "node-1"
    from_template = pod("templated", [])
    from_template["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "t"}]
    from_template["status"]["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": "c2"}]
    not_yet = pod("not-yet", [])
    not_yet["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "t"}]
    units = pending_units([bound, pod("a", ["c1"]), pod("b", ["c1"]), from_template, not_yet], [c1, c2])
    assert [(u.pod, u.claim_keys) for u in units] == [
        ("default/a", ("default/c1",)),
        ("default/templated", ("default/c2",)),
    ]
