"""The controller's policy: which nodes may change, how often, how far. Pure data + strict decoding.

A ``ModePolicy`` (YAML file, or the ConfigMap key ``policy.yaml`` the chart mounts)::

    apiVersion: gpu.dra-driver.dev/v1alpha1
    kind: ModePolicy
    nodeSelector: {gpu.dra-driver.dev/dynamic-modes: "true"}  # opt-in: only nodes with all these labels change
    minWholeGpusPerNode: 0        # whole GPUs a node keeps, whatever the demand
    maxChangesPerInterval: 4      # changes the whole cluster may get ...
    intervalSeconds: 60           # ... in any window this long
    cooldownSeconds: 300          # a GPU changed is not changed again before this
    pendingGraceSeconds: 5        # claims younger than this are left to the scheduler (hysteresis)
    modes: [whole, mig, timeslice, shared]   # the modes the controller may choose
    timesliceReplicas: [2, 4, 8]  # replica counts it may choose for timeslice
    dryRun: false                 # decide and report (events, metrics, plan) but write no NodeGpuModes

Every field is optional; unknown fields and wrong types are errors naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.config import strict
from api.errors import ConfigError
from api.names import API_VERSION, GROUP
from api.partitioning import MAX_TIMESLICE_REPLICAS

KIND = "ModePolicy"
OPT_IN_LABEL = f"{GROUP}/dynamic-modes"
MODE_KINDS = ("whole", "mig", "timeslice", "shared")
_FIELDS = {
    "apiVersion",
    "kind",
    "nodeSelector",
    "minWholeGpusPerNode",
    "maxChangesPerInterval",
    "intervalSeconds",
    "cooldownSeconds",
    "pendingGraceSeconds",
    "modes",
    "timesliceReplicas",
    "dryRun",
}


@dataclass(frozen=True)
class Policy:
    node_selector: tuple[tuple[str, str], ...] = ((OPT_IN_LABEL, "true"),)
    min_whole_gpus_per_node: int = 0
    max_changes_per_interval: int = 4
    interval_s: float = 60.0
    cooldown_s: float = 300.0
    pending_grace_s: float = 5.0
    modes: frozenset[str] = frozenset(MODE_KINDS)
    timeslice_replicas: tuple[int, ...] = (2, 4, 8)
    dry_run: bool = False

    def opted_in(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.node_selector)


def _int(raw: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    return strict.want_int(raw.get(key, default), key, low, high)


def _bool(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    return strict.want_bool(raw.get(key, default), key)


def _selector(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ConfigError("nodeSelector", "must map node label keys to string values ({} opts in every node)")
    return tuple(sorted(raw.items()))


def _modes(raw: Any) -> frozenset[str]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("modes", f"must be a non-empty list of {', '.join(MODE_KINDS)}")
    for i, mode in enumerate(raw):
        if mode not in MODE_KINDS:
            raise ConfigError(f"modes[{i}]", f"unknown mode {strict.type_name(mode)}; valid: {', '.join(MODE_KINDS)}")
    return frozenset(raw)


def _replicas(raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("timesliceReplicas", f"must be a non-empty list of integers 2..{MAX_TIMESLICE_REPLICAS}")
    for i, n in enumerate(raw):
        if not isinstance(n, int) or isinstance(n, bool) or not 2 <= n <= MAX_TIMESLICE_REPLICAS:
            raise ConfigError(f"timesliceReplicas[{i}]", f"must be an integer 2..{MAX_TIMESLICE_REPLICAS}")
    return tuple(sorted(set(raw)))


def parse_policy(raw: Any) -> Policy:
    """Strictly decode a ModePolicy document (None: the defaults); errors name the field."""
    if raw is None:
        return Policy()
    if not isinstance(raw, dict):
        raise ConfigError("<root>", f"must be a {KIND} mapping")
    for key in raw:
        if key not in _FIELDS:
            raise ConfigError(str(key), f"unknown field; valid fields: {', '.join(sorted(_FIELDS))}")
    if raw.get("apiVersion") != API_VERSION:
        raise ConfigError("apiVersion", f"must be {API_VERSION!r}, got {strict.type_name(raw.get('apiVersion'))}")
    if raw.get("kind") != KIND:
        raise ConfigError("kind", f"must be {KIND!r}, got {strict.type_name(raw.get('kind'))}")
    default = Policy()
    return Policy(
        node_selector=_selector(raw["nodeSelector"]) if "nodeSelector" in raw else default.node_selector,
        min_whole_gpus_per_node=_int(raw, "minWholeGpusPerNode", 0, 0, 1024),
        max_changes_per_interval=_int(raw, "maxChangesPerInterval", 4, 1, 10000),
        interval_s=float(_int(raw, "intervalSeconds", 60, 1, 86400)),
        cooldown_s=float(_int(raw, "cooldownSeconds", 300, 0, 86400)),
        pending_grace_s=float(_int(raw, "pendingGraceSeconds", 5, 0, 3600)),
        modes=_modes(raw["modes"]) if "modes" in raw else default.modes,
        timeslice_replicas=_replicas(raw["timesliceReplicas"]) if "timesliceReplicas" in raw else (2, 4, 8),
        dry_run=_bool(raw, "dryRun", False),
    )


def load_policy(text: str) -> Policy:
    """A ModePolicy from YAML text (one document; empty: the defaults), within ``api.config.strict``'s limits."""
    documents = strict.load_yaml_documents(text)
    if len(documents) > 1:
        raise ConfigError("<yaml>", f"holds {len(documents)} documents; a {KIND} is one")
    return parse_policy(documents[0] if documents else None)
