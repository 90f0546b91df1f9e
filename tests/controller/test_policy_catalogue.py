"""The policy's strict decoding, and the MIG profile table the controller carries."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from api.errors import ConfigError
from controller.planner import load_policy, parse_policy
from controller.planner.catalogue import PRODUCTS, mig_profiles, totals
from controller.planner.policy import OPT_IN_LABEL, Policy
from dra_driver.inventory import Inventory
from sandbox.mode_controller import POLICY

FULL = """
apiVersion: gpu.dra-driver.dev/v1alpha1
kind: ModePolicy
nodeSelector: {pool: flexible}
minWholeGpusPerNode: 2
maxChangesPerInterval: 3
intervalSeconds: 120
cooldownSeconds: 600
pendingGraceSeconds: 10
modes: [timeslice, mig]
timesliceReplicas: [8, 4]
dryRun: true
"""


def test_every_field_is_read() -> None:
    p = load_policy(FULL)
    assert p == Policy(
        node_selector=(("pool", "flexible"),),
        min_whole_gpus_per_node=2,
        max_changes_per_interval=3,
        interval_s=120,
        cooldown_s=600,
        pending_grace_s=10,
        modes=frozenset({"timeslice", "mig"}),
        timeslice_replicas=(4, 8),
        dry_run=True,
    )


def test_empty_text_is_the_default_policy_that_opts_in_by_label() -> None:
    assert load_policy("") == Policy()
    assert Policy().opted_in({OPT_IN_LABEL: "true"}) and not Policy().opted_in({})


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("minWholeGpusPerNode: -1", "minWholeGpusPerNode", "0..1024"),
        ("maxChangesPerInterval: many", "maxChangesPerInterval", 'string "many"'),
        ("cooldownSeconds: true", "cooldownSeconds", "boolean"),
        ("modes: [whole, fractional]", "modes[1]", "fractional"),
        ("timesliceReplicas: [1]", "timesliceReplicas[0]", "2..64"),
        ("nodeSelector: [a]", "nodeSelector", "label"),
        ("dryRun: yes please", "dryRun", "boolean"),
        ("cooldown: 5", "cooldown", "unknown field"),
    ],
)
def test_bad_fields_are_named(line: str, field: str, words: str) -> None:
    text = "apiVersion: gpu.dra-driver.dev/v1alpha1\nkind: ModePolicy\n" + line
    with pytest.raises(ConfigError) as err:
        load_policy(text)
    assert err.value.field == field and words in str(err.value)


def test_kind_and_version_are_checked() -> None:
    with pytest.raises(ConfigError, match="kind"):
        load_policy("apiVersion: gpu.dra-driver.dev/v1alpha1\nkind: PartitioningConfig")


@pytest.mark.parametrize("profile", ["single-a100", "a100-80gb-a30", "dgx-h100"])
def test_the_table_matches_what_nvml_reports_with_mig_on(inventory: Callable[..., Inventory], profile: str) -> None:
    for gpu in inventory(profile, mig_enabled=True).gpus:
        assert mig_profiles(gpu.product_name) == gpu.mig_profiles
    for gpu in inventory(profile).gpus:
        assert totals(gpu.product_name) == (gpu.memory_bytes, gpu.multiprocessors)


def test_gpus_the_table_does_not_know_have_no_mig() -> None:
    assert mig_profiles("NVIDIA L4") == () and totals("NVIDIA L4") is None
    assert len(PRODUCTS) == 4


def test_the_sandbox_policy_is_valid_and_opts_in_by_label_only() -> None:
    policy = parse_policy(POLICY)
    assert policy.node_selector == Policy().node_selector and policy.pending_grace_s == 1
