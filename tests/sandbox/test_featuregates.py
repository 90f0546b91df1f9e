from __future__ import annotations

from sandbox.featuregates import DRA_GATES, Availability, FeatureGates, decide, settable_gates

HELP = """
      --feature-gates colonSeparatedMultimapStringString   Comma-separated list of component:key=value pairs
                                                           kube:DRAConsumableCapacity=true|false (BETA - default=true)
                                                           kube:DRAFractionalCapacityRange=true|false (BETA - default=false), or DRAFractionalCapacityRange=true|false (BETA - default=true) if --min-compatibility-version>=1.37
                                                           kube:DRAListTypeAttributes=true|false (ALPHA - default=false)
      --goaway-chance float
"""

S, L, U = Availability.SETTABLE, Availability.LOCKED_ON, Availability.UNAVAILABLE


def test_help_lists_only_the_settable_gates() -> None:
    assert settable_gates(HELP) == {"DRAConsumableCapacity", "DRAFractionalCapacityRange", "DRAListTypeAttributes"}


def test_gate_settable_everywhere_is_passed_to_every_component() -> None:
    gates = decide(["A"], {"apiserver": {"A": S}, "scheduler": {"A": S}})
    assert gates.enabled == ("A",)
    assert gates.flag() == "A=true"


def test_ga_gate_is_reported_on_but_not_passed() -> None:
    gates = decide(["A", "B"], {"apiserver": {"A": L, "B": S}, "scheduler": {"A": L, "B": S}})
    assert gates.locked_on == ("A",)
    assert gates.flag() == "B=true"
    assert gates.effective == ("A", "B")


def test_gate_one_binary_does_not_know_is_set_nowhere() -> None:
    gates = decide(["A", "B"], {"apiserver": {"A": S, "B": S}, "scheduler": {"A": U, "B": S}})
    assert gates.unavailable == ("A",)
    assert gates.enabled == ("B",)
    assert "A" not in gates.effective


def test_gate_settable_in_one_binary_and_locked_in_another_is_not_passed_inconsistently() -> None:
    gates = decide(["A"], {"apiserver": {"A": S}, "scheduler": {"A": L}})
    assert gates.enabled == ()
    assert gates.unavailable == ("A",)


def test_feature_gates_survive_a_json_round_trip() -> None:
    gates = FeatureGates(DRA_GATES, DRA_GATES[:2], DRA_GATES[2:4], DRA_GATES[4:])
    assert FeatureGates.from_json(gates.to_json()) == gates
