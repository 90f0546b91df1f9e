"""GPU health as device taints on a real API server: an XID reported by NVML's event API taints every device of
that GPU in the published slices within seconds, and the taint goes by itself after the quiet period."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from api.partitioning import Whole
from dra_driver.k8s import Kube
from e2e.conftest import SimNode
from e2e.fixtures import Sandbox
from e2e.plugin_node import PluginNode
from e2e.wait import until

pytestmark = [pytest.mark.sandbox]
R = "/apis/resource.k8s.io/v1"
QUIET_S = 10


@pytest.fixture
def plugin(sandbox: Sandbox, kube: Kube, sim_node: Callable[..., SimNode]) -> Iterator[PluginNode]:
    sim = sim_node("taint")
    node = PluginNode.create(sim.name, sandbox.kubeconfig, "dgx-a100", Whole(), root=sim.root)
    node.start(kube, extra=("--xid-quiet-seconds", str(QUIET_S), "--rescan-seconds", "2"))
    yield node
    node.stop()
    for s in kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={sim.name}"):
        kube.delete(f"{R}/resourceslices/{s['metadata']['name']}")


def _taints(kube: Kube, node: str) -> dict[str, list[tuple[str, str, str]]]:
    out = {}
    for s in kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={node}"):
        for d in s["spec"].get("devices") or []:
            out[d["name"]] = [(t["key"], t.get("value", ""), t["effect"]) for t in d.get("taints") or []]
    return out


def test_xid_79_taints_the_gpu_no_schedule_within_15s_and_clears_after_recovery(plugin: PluginNode, kube: Kube) -> None:
    assert not any(_taints(kube, plugin.name).values())
    plugin.machine.inject_xid(3, 79)
    started = time.monotonic()
    tainted = until(lambda: {n: t for n, t in _taints(kube, plugin.name).items() if t}, "a tainted device", timeout=15)
    assert time.monotonic() - started < 15
    assert tainted == {"gpu-3": [("gpu.dra-driver.dev/xid", "79", "NoSchedule")]}, tainted
    plugin.machine.set_fault(3, None)
    plugin.machine.clear_events(3)
    until(lambda: not any(_taints(kube, plugin.name).values()), "the taint gone", timeout=30)


def test_an_informational_xid_taints_with_effect_none_and_application_xids_not_at_all(
    plugin: PluginNode, kube: Kube
) -> None:
    plugin.machine.inject_xid(2, 13)  # an application's fault
    plugin.machine.inject_xid(1, 63)  # page retirement recorded: informational
    tainted = until(lambda: {n: t for n, t in _taints(kube, plugin.name).items() if t}, "a tainted device", timeout=15)
    assert tainted == {"gpu-1": [("gpu.dra-driver.dev/xid", "63", "None")]}, tainted
