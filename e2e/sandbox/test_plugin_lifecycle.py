"""The plugin as a daemon: health endpoints, health stream, SIGTERM, two plugin pods on one node."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from api.partitioning import Mig, Whole
from dra_driver.classes import class_name
from dra_driver.k8s import Kube
from e2e import claims
from e2e.conftest import SimNode
from e2e.fixtures import Sandbox
from e2e.plugin_node import DRIVER, PluginNode
from e2e.wait import until

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("device_classes_installed")]
R = "/apis/resource.k8s.io/v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _http(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            status: int = r.status
            return status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


@pytest.fixture
def node(sandbox: Sandbox, kube: Kube, sim_node: Callable[..., SimNode]) -> Iterator[tuple[SimNode, PluginNode]]:
    sim = sim_node("life")
    plugin = PluginNode.create(sim.name, sandbox.kubeconfig, "dgx-a100", Whole(), root=sim.root)
    yield sim, plugin
    plugin.stop()
    for s in kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={sim.name}"):
        kube.delete(f"{R}/resourceslices/{s['metadata']['name']}")


def test_readiness_follows_the_first_publication_and_sigterm_removes_the_sockets(
    node: tuple[SimNode, PluginNode], kube: Kube
) -> None:
    sim, plugin = node
    port = _free_port()
    plugin.start(kube, extra=("--health-port", str(port)))
    until(lambda: _http(port, "/readyz") == 200, "readyz 200")
    assert _http(port, "/healthz") == 200
    until(lambda: sim.kubelet.watcher.plugin(DRIVER), "registration with the kubelet")
    sockets = list(plugin.plugins_dir.rglob("*.sock")) + list(plugin.registry_dir.glob("*.sock"))
    assert len(sockets) == 2
    plugin.stop()
    assert plugin.process is not None and plugin.process.returncode == 0, plugin.log_text()[-4000:]
    assert not any(s.exists() for s in sockets)
    selector = f"spec.nodeName={sim.name},spec.driver={DRIVER}"
    assert kube.list(f"{R}/resourceslices", fieldSelector=selector), "slices stay for the next plugin pod"


def test_health_stream_reports_a_lost_gpu_to_the_kubelet(node: tuple[SimNode, PluginNode], kube: Kube) -> None:
    sim, plugin = node
    plugin.start(kube)
    registered = until(lambda: sim.kubelet.watcher.plugin(DRIVER), "registration")
    assert registered.health_supported
    until(lambda: registered.health.get((sim.name, "gpu-3")) == "HEALTHY", "initial health")
    plugin.machine.set_fault(3, "lost")
    until(
        lambda: registered.health.get((sim.name, "gpu-3")) == "UNHEALTHY", "gpu-3 unhealthy after re-scan", timeout=30
    )
    assert registered.health.get((sim.name, "gpu-2")) == "HEALTHY"
    selector = f"spec.nodeName={sim.name},spec.driver={DRIVER}"
    until(
        lambda: (
            "gpu-3"
            not in {
                d["name"]
                for s in kube.list(f"{R}/resourceslices", fieldSelector=selector)
                for d in s["spec"].get("devices", [])
            }
        ),
        "lost GPU unpublished",
        timeout=30,
    )


def test_a_second_plugin_pod_waits_for_the_first_then_takes_over(node: tuple[SimNode, PluginNode], kube: Kube) -> None:
    sim, old = node
    old.start(kube)
    until(lambda: sim.kubelet.watcher.plugin(DRIVER), "old plugin registered")
    new = PluginNode(old.name, old.root, old.kubeconfig, old.machine, old.mode)
    new.start(kube, wait=False)  # a rolling update starts the new pod while the old one runs
    try:
        time.sleep(3)
        assert old.alive() and new.alive()
        assert not new.dra_socket().exists(), "the new pod must not touch the node's state while the old one runs"
        assert "waiting for it to exit" in new.log_text()
        old.stop()  # the rolling update retires the old pod
        until(lambda: new.dra_socket().exists(), "new plugin serving", timeout=60)
        until(
            lambda: (p := sim.kubelet.watcher.plugin(DRIVER)) and p.endpoint == str(new.dra_socket()),
            "kubelet talks to the new plugin",
        )
        assert new.dra_socket() != old.dra_socket()
    finally:
        new.stop()


def test_after_a_reboot_prepared_claims_are_prepared_again(
    sandbox: Sandbox, kube: Kube, sim_node: Callable[..., SimNode], namespace: str
) -> None:
    sim = sim_node("reboot")
    plugin = PluginNode.create(sim.name, sandbox.kubeconfig, "single-a100", Mig(), root=sim.root)
    boot_id = sim.root / "boot_id"
    boot_id.write_text("boot-1\n")
    flags = ("--boot-id-file", str(boot_id))
    try:
        plugin.start(kube, extra=flags)
        pod = claims.pod(kube, namespace, sim.name, claims.template(kube, namespace, class_name("mig-2g-10gb")))
        until(
            lambda: (
                (kube.get(f"/api/v1/namespaces/{namespace}/pods/{pod}") or {}).get("status", {}).get("phase")
                == "Running"
            ),
            "pod Running",
        )
        before = plugin.machine.state()["gpus"][0]["gpuInstances"]
        (spec_file,) = list(plugin.cdi_dir.glob("*.json"))
        old_uuid = before[0]["computeInstances"][0]["uuid"]
        assert old_uuid in spec_file.read_text()

        plugin.kill()
        plugin.machine.reboot()  # MIG partitions do not survive a reboot
        boot_id.write_text("boot-2\n")
        assert plugin.machine.mig_partitions() == []
        plugin.start(kube, extra=flags)

        after = plugin.machine.state()["gpus"][0]["gpuInstances"]
        assert [(g["profileId"], g["start"]) for g in after] == [(g["profileId"], g["start"]) for g in before]
        new_uuid = after[0]["computeInstances"][0]["uuid"]
        assert new_uuid != old_uuid and new_uuid in spec_file.read_text() and old_uuid not in spec_file.read_text()
        assert "re-prepared 1 claim(s) after reboot" in plugin.log_text()
    finally:
        plugin.stop()
        for s in kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={sim.name}"):
            kube.delete(f"{R}/resourceslices/{s['metadata']['name']}")
