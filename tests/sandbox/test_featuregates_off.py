"""Feature gates switched off on request ($DRA_SANDBOX_GATES_OFF): for tests of a cluster without them."""

from __future__ import annotations

import pytest

from sandbox.featuregates import DRA_GATES, OFF_ENV, Availability, FeatureGates, GateCannotBeOff, decide, gates_off

S, L, U = Availability.SETTABLE, Availability.LOCKED_ON, Availability.UNAVAILABLE


def test_a_gate_asked_off_is_set_false_on_every_component_and_not_effective() -> None:
    gates = decide(["A", "B"], {"apiserver": {"A": S, "B": S}, "scheduler": {"A": S, "B": S}}, off=["A"])
    assert gates.disabled == ("A",) and gates.enabled == ("B",)
    assert gates.flag() == "B=true,A=false"
    assert gates.effective == ("B",)


def test_a_gate_asked_off_that_no_binary_knows_is_off_already() -> None:
    gates = decide(["A"], {"apiserver": {"A": U}, "scheduler": {"A": U}}, off=["A"])
    assert gates.disabled == () and gates.unavailable == ("A",) and gates.flag() == ""


@pytest.mark.parametrize("views", [{"a": {"A": L}, "b": {"A": L}}, {"a": {"A": S}, "b": {"A": U}}])
def test_a_gate_that_cannot_be_off_everywhere_is_an_error_naming_it(views: dict[str, dict[str, Availability]]) -> None:
    with pytest.raises(GateCannotBeOff, match=f"{OFF_ENV}: A cannot be switched off"):
        decide(["A"], views, off=["A"])


def test_the_variable_names_known_gates_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFF_ENV, " DRAPartitionableDevices, ")
    assert gates_off() == ("DRAPartitionableDevices",)
    monkeypatch.delenv(OFF_ENV)
    assert gates_off() == ()
    with pytest.raises(GateCannotBeOff, match=r"unknown gate.*Bogus; valid: DRAPartitionableDevices"):
        gates_off("Bogus")


def test_disabled_gates_survive_a_json_round_trip_and_older_status_files_read() -> None:
    gates = FeatureGates(DRA_GATES, DRA_GATES[1:], (), (), DRA_GATES[:1])
    assert FeatureGates.from_json(gates.to_json()) == gates
    older = {k: v for k, v in gates.to_json().items() if k != "disabled"}
    assert FeatureGates.from_json(older).disabled == ()
