"""Our allocator and the real kube-scheduler reach the same verdict on hundreds of generated scenarios.

Each scenario is a fresh simulated node with slices from a simulated machine (every profile; whole, MIG,
time-slice and shared modes, mixed per GPU; clusters with and without shared counters; device taints),
claims already allocated on it, and a new pod whose claim(s) use class-only requests, CEL selectors
(productName, memory quantities, MIG profile, compute-capability semver, index), counts, ``All``,
``firstAvailable``, ``matchAttribute`` / ``distinctAttribute``, exhausted MIG counters, time-slice replicas,
shared devices with capacity requests, taints and tolerations, admin access, or selectors that fail at
runtime. Claims are plain ResourceClaims referenced by name from the pods (no template round trip).

A disagreement on the verdict (allocated / unschedulable / error) fails the test, so does a refusal whose
message does not quote ours (``cannot allocate all claims``, the CEL error, …), and so does an allocation
(ours or the scheduler's) that breaks a rule of the independent ``checker``. Which devices were chosen is
compared and reported. ``DRA_DIFF_SEED``, ``DRA_DIFF_SCENARIOS`` and ``DRA_DIFF_PARALLEL`` override the
defaults; a failure message names the seed and scenario so it can be replayed.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes import config as kube_config

from dra_driver.inventory import Inventory
from dra_driver.k8s import Kube
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from e2e.differential import scenarios
from e2e.differential.sandbox_run import EVICTED, Context, Poller, Record, run_scenario
from e2e.fixtures import Sandbox
from nvml_sim.control import SimulatedMachine
from nvml_sim.hardware import MACHINE_PROFILES

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.usefixtures("device_classes_installed")]

SEED = int(os.environ.get("DRA_DIFF_SEED", "20260701"))
COUNT = int(os.environ.get("DRA_DIFF_SCENARIOS", "240"))
PARALLEL = int(os.environ.get("DRA_DIFF_PARALLEL", "32"))


@pytest.fixture(scope="module")
def inventories(tmp_path_factory: pytest.TempPathFactory) -> Mapping[str, Inventory]:
    root = tmp_path_factory.mktemp("machines")
    out = {}
    for profile in sorted(MACHINE_PROFILES):
        SimulatedMachine.create(root / f"{profile}.json", profile).activate()
        with Nvml() as nvml:
            out[profile] = discover(nvml)
    return out


@pytest.fixture(scope="module")
def wide_api(sandbox: Sandbox) -> Iterator[client.ApiClient]:
    """A client whose connection pool serves every scenario thread at once."""
    configuration = client.Configuration()
    kube_config.load_kube_config(config_file=str(sandbox.kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = PARALLEL + 8
    api = client.ApiClient(configuration)
    yield api
    api.close()


def _summary(records: list[Record], seconds: float) -> str:
    lines = [f"{len(records)} scenarios (seed {SEED}) in {seconds:.0f}s with {PARALLEL} in parallel"]
    lines.append("verdicts (scheduler): " + str(dict(collections.Counter(r.theirs for r in records))))
    by_family: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in records:
        by_family[r.scenario.family][r.theirs] += 1
    lines += [f"  {family}: {dict(c)}" for family, c in sorted(by_family.items())]
    profiles = collections.Counter(f"{r.scenario.machine.profile}/{r.scenario.machine.theme}" for r in records)
    lines.append("machines: " + ", ".join(f"{k} {v}" for k, v in sorted(profiles.items())))
    same = [r.same_devices for r in records if r.same_devices is not None]
    evicted = sum(1 for r in records if r.their_message == EVICTED)
    lines.append(f"both allocated: {len(same)}, same devices: {sum(same)}; evicted right after allocation: {evicted}")
    quoted = [r for r in records if r.same_message is not None]
    lines.append(
        f"both refused: {len(quoted)}, scheduler's message quotes ours: {sum(bool(r.same_message) for r in quoted)}"
    )
    lines += [
        f"  #{r.scenario.index}: ours {r.our_message!r}, scheduler {r.their_message!r}"
        for r in quoted
        if not r.same_message
    ]
    lines.append(f"scenario seconds: max {max(r.seconds for r in records):.1f}")
    return "\n".join(lines)


def _failure(r: Record) -> str:
    head = f"seed {SEED} scenario {r.scenario.describe()}"
    if r.harness_error:
        return f"{head}: harness: {r.harness_error}"
    detail = [f"ours={r.ours} ({r.our_message}) scheduler={r.theirs} ({r.their_message})"]
    detail += [f"our allocation breaks: {v}" for v in r.our_violations]
    detail += [f"scheduler's allocation breaks: {v}" for v in r.their_violations]
    return f"{head}: {'; '.join(detail)}\n  pre={r.scenario.pre}\n  new={r.scenario.new}"


def test_our_allocator_and_kube_scheduler_agree_on_generated_scenarios(
    kube: Kube, wide_api: client.ApiClient, namespace: str, inventories: Mapping[str, Inventory], tmp_path: Path
) -> None:
    admin = {"metadata": {"labels": {"resource.kubernetes.io/admin-access": "true"}}}
    kube.patch(f"/api/v1/namespaces/{namespace}", admin)  # admin-access requests are refused elsewhere
    generated = scenarios.generate(SEED, COUNT, inventories)
    classes = {c["metadata"]["name"]: c for c in kube.list("/apis/resource.k8s.io/v1/deviceclasses")}
    wide = Kube(wide_api)
    start = time.monotonic()
    with Poller(wide, namespace) as poller, ThreadPoolExecutor(PARALLEL) as pool:
        ctx = Context(wide, wide_api, namespace, poller, inventories, classes)
        records = list(pool.map(lambda sc: run_scenario(ctx, sc), generated))
    summary = _summary(records, time.monotonic() - start)
    print(summary)
    (tmp_path / "summary.txt").write_text(summary)
    failures = [
        _failure(r)
        for r in records
        if r.harness_error or not r.agree or r.same_message is False or r.our_violations or r.their_violations
    ]
    assert not failures, f"{len(failures)} of {len(records)} scenarios failed:\n" + "\n".join(failures)
