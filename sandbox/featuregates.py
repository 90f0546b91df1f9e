"""Which DRA feature gates to set on the control plane, decided once from what the binaries accept.

A gate is passed (``--feature-gates=X=true``) to every component only when every binary lists it as settable in
its ``--help``. A gate missing from ``--help`` is probed with ``--feature-gates=X=true --version``: if that is
accepted the gate is GA and locked on (setting it only earns a "will be removed" warning, so it is not passed);
if it is rejected the gate is unknown to the binary (removed, or not yet added) or locked off.

Gates named in ``$DRA_SANDBOX_GATES_OFF`` (comma-separated, from :data:`DRA_GATES`) are switched off instead
(``--feature-gates=X=false``), for tests of a cluster without them; one that is GA in these binaries cannot be,
and the start fails saying so.
"""

from __future__ import annotations

import enum
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import SandboxError

DRA_GATES: tuple[str, ...] = (
    "DRAPartitionableDevices",
    "DRADeviceTaints",
    "DRADeviceTaintRules",
    "DRAConsumableCapacity",
    "DRAExtendedResource",
    "DRAPrioritizedList",
    "DRAAdminAccess",
    "DRAResourceClaimDeviceStatus",
    "DRADeviceBindingConditions",
    "ResourceHealthStatus",
)

OFF_ENV = "DRA_SANDBOX_GATES_OFF"

_HELP_GATE = re.compile(r"\bkube:([A-Za-z0-9]+)=true\|false \(([A-Z]+) - default=(true|false)\)")
_PROBE_TIMEOUT_S = 30.0


class Availability(enum.Enum):
    SETTABLE = "settable"
    LOCKED_ON = "locked on"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class FeatureGates:
    """The outcome: what is set on the command lines and what is on anyway."""

    requested: tuple[str, ...]
    enabled: tuple[str, ...]
    """Set to true on every component's command line."""
    locked_on: tuple[str, ...]
    """GA in these binaries: always on, not passed."""
    unavailable: tuple[str, ...]
    """Unknown to (or locked off in) at least one binary: not passed, not on."""
    disabled: tuple[str, ...] = ()
    """Asked off (``$DRA_SANDBOX_GATES_OFF``) and set to false on every component's command line."""

    @property
    def effective(self) -> tuple[str, ...]:
        """Requested gates that are on in the running control plane."""
        return tuple(sorted(self.enabled + self.locked_on))

    def flag(self) -> str:
        """Value of ``--feature-gates``; empty when nothing needs setting."""
        return ",".join([f"{g}=true" for g in self.enabled] + [f"{g}=false" for g in self.disabled])

    def to_json(self) -> dict[str, list[str]]:
        return {
            "requested": list(self.requested),
            "enabled": list(self.enabled),
            "locked_on": list(self.locked_on),
            "unavailable": list(self.unavailable),
            "disabled": list(self.disabled),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Sequence[str]]) -> FeatureGates:
        return cls(
            requested=tuple(doc["requested"]),
            enabled=tuple(doc["enabled"]),
            locked_on=tuple(doc["locked_on"]),
            unavailable=tuple(doc["unavailable"]),
            disabled=tuple(doc.get("disabled", ())),
        )


def settable_gates(help_text: str) -> frozenset[str]:
    """Gates a component's ``--help`` lists under ``--feature-gates`` (locked GA gates are not listed)."""
    return frozenset(m.group(1) for m in _HELP_GATE.finditer(help_text))


class GateCannotBeOff(SandboxError):
    pass


def gates_off(value: str | None = None) -> tuple[str, ...]:
    """The gates ``$DRA_SANDBOX_GATES_OFF`` (or ``value``) asks to switch off; an unknown name is an error."""
    text = os.environ.get(OFF_ENV, "") if value is None else value
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in DRA_GATES]
    if unknown:
        raise GateCannotBeOff(f"{OFF_ENV}: unknown gate(s) {', '.join(unknown)}; valid: {', '.join(DRA_GATES)}")
    return names


def decide(
    requested: Sequence[str], per_binary: Mapping[str, Mapping[str, Availability]], off: Sequence[str] = ()
) -> FeatureGates:
    """Combine each binary's view of each requested gate into one consistent set. Gates in ``off`` are set false
    on every component; one unknown to every binary is off already; one locked on, or settable in only some
    binaries, is an error."""
    enabled, locked, unavailable, disabled = [], [], [], []
    for gate in requested:
        states = {view.get(gate, Availability.UNAVAILABLE) for view in per_binary.values()}
        if gate in off:
            if states == {Availability.SETTABLE}:
                disabled.append(gate)
            elif states == {Availability.UNAVAILABLE}:
                unavailable.append(gate)
            else:
                raise GateCannotBeOff(
                    f"{OFF_ENV}: {gate} cannot be switched off on every component of these binaries "
                    f"({', '.join(sorted(s.value for s in states))}): leave it out of {OFF_ENV}"
                )
        elif states == {Availability.SETTABLE}:
            enabled.append(gate)
        elif states == {Availability.LOCKED_ON}:
            locked.append(gate)
        else:
            unavailable.append(gate)
    return FeatureGates(tuple(requested), tuple(enabled), tuple(locked), tuple(unavailable), tuple(disabled))


def probe(binary: Path, gates: Sequence[str]) -> dict[str, Availability]:
    """Ask one Kubernetes component binary how it treats each of ``gates``."""
    listed = settable_gates(_run(binary, "--help").stdout)
    result: dict[str, Availability] = {}
    for gate in gates:
        if gate in listed:
            result[gate] = Availability.SETTABLE
            continue
        accepted = _run(binary, f"--feature-gates={gate}=true", "--version").returncode == 0
        result[gate] = Availability.LOCKED_ON if accepted else Availability.UNAVAILABLE
    return result


def resolve(binaries: Sequence[Path], requested: Sequence[str] = DRA_GATES) -> FeatureGates:
    """Probe every binary and decide; the same set is then passed to all of them. Gates named in
    ``$DRA_SANDBOX_GATES_OFF`` are switched off (:func:`decide`)."""
    off = gates_off()
    with ThreadPoolExecutor(max_workers=len(binaries) or 1) as pool:
        views = list(pool.map(lambda b: probe(b, requested), binaries))
    return decide(requested, {str(b): v for b, v in zip(binaries, views, strict=True)}, off)


def _run(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args],
        capture_output=True,
        text=True,
        timeout=_PROBE_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
