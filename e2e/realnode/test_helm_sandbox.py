"""``dra-gpu sandbox up --kubelet real --driver helm --profile dgx-a100 --mode mig``: the driver installed as
users install it, through the code path the CLI takes (``sandbox.commands.sandbox_up``).

No host-process plugin runs: the project's chart (release ``gpu`` in ``dra-gpu``) runs the plugin as a DaemonSet
pod in the node's containerd, from the simulated-GPU image built without Docker. In order, on one sandbox:

1. the DaemonSet's pod is Ready on the node and a busybox pod with a 1g.5gb claim runs, prepared by it;
2. ``helm upgrade`` to the same image under another tag rolls the plugin: the running GPU pod keeps its
   container, and a new claim is prepared by the new plugin pod;
3. ``helm uninstall`` leaves no ResourceSlices, sockets or DeviceClasses;
4. ``sandbox down`` stops everything, and a second ``up`` with ``--driver process`` meanwhile is refused.

The scenarios are shared with the kind tier (e2e/helm_scenarios.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.names import DEFAULT_DRIVER_NAME
from dra_driver.cdi.names import spec_file_prefix
from dra_driver.k8s import Kube
from e2e import helm_scenarios as scenarios
from e2e.fixtures import Sandbox
from kubelet_plugin.cdi_specs import claim_kind
from sandbox.binaries import find_or_build_helm, find_or_build_node
from sandbox.commands import sandbox_down, sandbox_up
from sandbox.layout import Layout
from sandbox.plugin_image import DEFAULT_TAG, image_ref
from sandbox.realnode import helm_driver
from sandbox.realnode.host import why_not_real
from sandbox.status import State, read_status

DRIVER = DEFAULT_DRIVER_NAME
UPGRADE_TAG = "upgrade"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def helm_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    reason = why_not_real()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("helm")
    out = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out):
        code = sandbox_up("dgx-a100", 1, workdir, mode="mig", kubelet="real", driver="helm", owner_pid=os.getpid())
    TIMINGS["up"] = time.monotonic() - started
    status = read_status(Layout(workdir))
    try:
        assert code == 0 and status is not None and status.state is State.READY, out.getvalue()
        yield Sandbox(workdir, status)
    finally:
        started = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()):
            sandbox_down(workdir)
        TIMINGS["down"] = time.monotonic() - started
        print(f"\nhelm sandbox timings (s): {', '.join(f'{k} {v:.0f}' for k, v in TIMINGS.items())}")


@pytest.fixture(scope="module")
def kube(helm_sandbox: Sandbox) -> Iterator[Kube]:
    with helm_sandbox.api_client() as api:
        yield Kube(api)


@pytest.fixture(scope="module")
def first_pod(helm_sandbox: Sandbox, kube: Kube) -> scenarios.GpuPod:
    """The GPU pod started before the upgrade (test 1), which must survive it (test 2)."""
    (node,) = helm_sandbox.nodes
    with helm_sandbox.api_client() as api:
        return scenarios.run_claim_pod(kube, api, node, DRIVER)


def _sockets(sandbox: Sandbox, node: str) -> list[str]:
    kubelet = sandbox.layout.node(node) / "kubelet"  # the node's /var/lib/kubelet
    found = list((kubelet / "plugins_registry").glob(f"{DRIVER}-*")) + list((kubelet / "plugins" / DRIVER).glob("*"))
    return [str(p) for p in found]


def test_the_daemonset_pod_is_ready_and_a_1g_5gb_claim_runs_on_busybox(
    helm_sandbox: Sandbox, kube: Kube, first_pod: scenarios.GpuPod
) -> None:
    (node,) = helm_sandbox.nodes
    assert helm_sandbox.status.driver == "helm"
    plugin = scenarios.check_plugin_pod(kube, node, image_ref(DEFAULT_TAG, simulated=True))
    names = {p.name for p in helm_sandbox.status.processes}
    assert not any(n.startswith("plugin") for n in names), names  # no host-process plugin
    scenarios.check_mig_1g_5gb(first_pod)
    with helm_sandbox.api_client() as api:
        assert scenarios.prepared_by(api, plugin, first_pod)


def test_up_with_the_process_driver_is_refused_while_it_runs(
    helm_sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sandbox_up("dgx-a100", 1, helm_sandbox.workdir, mode="mig", kubelet="real", driver="process") == 2
    assert "--driver helm; you asked for --driver process: run `dra-gpu sandbox down` first" in capsys.readouterr().err


def test_helm_upgrade_rolls_the_plugin_without_disturbing_running_gpu_pods(
    helm_sandbox: Sandbox, kube: Kube, first_pod: scenarios.GpuPod
) -> None:
    (node,) = helm_sandbox.nodes
    old = {node: scenarios.check_plugin_pod(kube, node, image_ref(DEFAULT_TAG, simulated=True))}
    progress = lambda _line: None  # noqa: E731
    ctr = find_or_build_node(progress).ctr
    (agent,) = [p for p in helm_sandbox.status.processes if p.name == f"node-{node}"]
    image = helm_driver.retag_image(ctr, agent.pid, DEFAULT_TAG, UPGRADE_TAG)  # same contents, another name

    started = time.monotonic()
    values = helm_driver.chart_values("dgx-a100", "mig", helm_sandbox.status.server, tag=UPGRADE_TAG)
    helm_driver.install(find_or_build_helm(progress), helm_sandbox.kubeconfig, values)  # upgrade --install --wait
    new = scenarios.wait_rolled(kube, helm_sandbox.nodes, old, image)
    TIMINGS["upgrade"] = time.monotonic() - started

    scenarios.check_undisturbed(kube, first_pod)
    with helm_sandbox.api_client() as api:
        second = scenarios.run_claim_pod(kube, api, node, DRIVER)
        scenarios.check_mig_1g_5gb(second)
        assert second.device != first_pod.device
        assert scenarios.prepared_by(api, new[node], second)
    scenarios.check_undisturbed(kube, first_pod)
    scenarios.delete_pod(kube, second)


def test_helm_uninstall_leaves_no_slices_sockets_or_device_classes(
    helm_sandbox: Sandbox, kube: Kube, first_pod: scenarios.GpuPod
) -> None:
    scenarios.delete_pod(kube, first_pod)  # unprepared by the plugin while it runs
    started = time.monotonic()
    helm_driver.uninstall(find_or_build_helm(lambda _line: None), helm_sandbox.kubeconfig)
    scenarios.check_nothing_left(kube, DRIVER, helm_sandbox.nodes, lambda n: _sockets(helm_sandbox, n))
    TIMINGS["uninstall"] = time.monotonic() - started
    for node in helm_sandbox.nodes:
        cdi = Path(helm_sandbox.layout.node(node)) / "cdi"
        assert not list(cdi.glob(f"{spec_file_prefix(claim_kind(DRIVER))}*")), "claim CDI specs left"
