"""Device taints and request tolerations."""

from __future__ import annotations

import pytest

from dra_driver.structured import Allocation, ClusterState, Unsatisfiable, allocate
from dra_driver.structured.model import Taint, Toleration
from dra_driver.structured.reasons import TaintsNotTolerated
from dra_driver.structured.taints import tolerates
from tests.allocator.builders import NODE, claim, cluster, device, exact, first_available, resource_slice, sub

BROKEN = {"key": "example.com/broken", "value": "ecc", "effect": "NoSchedule"}


def first_device(outcome: object) -> str | None:
    if isinstance(outcome, Allocation):
        return outcome.results[0].device
    assert isinstance(outcome, Unsatisfiable), outcome
    return None


def tainted_state(*taints: dict[str, str]) -> ClusterState:
    return cluster([resource_slice("s", [device("gpu-0", taints=list(taints))])])


@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_blocking_taints_keep_the_device_from_requests_without_tolerations(effect: str) -> None:
    state = tainted_state({**BROKEN, "effect": effect})
    outcome = allocate(state, claim("c", exact("gpu")), NODE)
    assert isinstance(outcome, Unsatisfiable)
    assert TaintsNotTolerated("gpu", 1, (f"example.com/broken=ecc:{effect}",)) in outcome.reasons


def test_none_effect_and_unknown_effects_are_ignored() -> None:
    state = tainted_state({**BROKEN, "effect": "None"}, {**BROKEN, "effect": "Future"})
    assert first_device(allocate(state, claim("c", exact("gpu")), NODE)) == "gpu-0"


@pytest.mark.parametrize(
    "toleration",
    [
        {"key": "example.com/broken", "operator": "Exists"},
        {"key": "example.com/broken", "value": "ecc"},
        {"key": "example.com/broken", "operator": "Equal", "value": "ecc", "effect": "NoSchedule"},
        {"operator": "Exists"},
    ],
)
def test_matching_tolerations_admit_the_device(toleration: dict[str, str]) -> None:
    state = tainted_state(BROKEN)
    assert first_device(allocate(state, claim("c", exact("gpu", tolerations=[toleration])), NODE)) == "gpu-0"


@pytest.mark.parametrize(
    "toleration",
    [
        {"key": "example.com/broken", "value": "other"},
        {"key": "example.com/broken", "operator": "Exists", "effect": "NoExecute"},
        {"key": "other", "operator": "Exists"},
    ],
)
def test_tolerations_that_do_not_match_leave_the_device_blocked(toleration: dict[str, str]) -> None:
    state = tainted_state(BROKEN)
    assert first_device(allocate(state, claim("c", exact("gpu", tolerations=[toleration])), NODE)) is None


def test_admin_access_does_not_bypass_taints() -> None:
    state = tainted_state(BROKEN)
    assert first_device(allocate(state, claim("c", exact("gpu", adminAccess=True)), NODE)) is None


def test_subrequest_tolerations_apply_to_that_alternative_only() -> None:
    state = tainted_state(BROKEN)
    tolerant = sub("tolerant", tolerations=[{"operator": "Exists"}])
    outcome = allocate(state, claim("c", first_available("gpu", sub("strict"), tolerant)), NODE)
    assert isinstance(outcome, Allocation) and outcome.results[0].request == "gpu/tolerant"


def test_toleration_with_an_unknown_operator_tolerates_nothing() -> None:
    assert not tolerates(Toleration(key="k", operator="Sometimes"), Taint("k", "", "NoSchedule"))
