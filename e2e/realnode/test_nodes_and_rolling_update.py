"""Two real nodes in one sandbox, and a rolling update of the driver's plugin on one of them.

During a rolling update two plugin instances of the same driver run on a node, each with its own sockets
(named by the pod UID); the kubelet uses the newest registration and falls back to the other when it goes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.names import DEFAULT_DRIVER_NAME
from dra_driver.classes import class_name
from dra_driver.k8s import Kube
from e2e import claims
from e2e.fixtures import Sandbox
from e2e.realnode import pods
from e2e.wait import until
from kubelet_plugin.settings import socket_paths
from sandbox.realnode.node import AgentSpec
from sandbox.realnode.probe import Seen

SANDBOX = ("dgx-a100", 2, "whole")


@pytest.fixture(scope="module")
def ns(real_kube: Kube) -> str:
    name = f"real-{uuid.uuid4().hex[:6]}"
    real_kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    return name


def _run_pod(sandbox: Sandbox, kube: Kube, ns: str, node: str) -> Seen:
    template = claims.template(kube, ns, class_name("gpu"))
    api = sandbox.api_client()
    try:
        return pods.seen(api, kube, ns, pods.create(kube, ns, node, template))
    finally:
        api.close()


def test_pods_on_both_nodes_get_their_own_nodes_gpus(real_sandbox: Sandbox, real_kube: Kube, ns: str) -> None:
    nodes = {n["metadata"]["name"]: n for n in real_kube.list("/api/v1/nodes")}
    assert sorted(nodes) == sorted(real_sandbox.nodes) and len(nodes) == 2
    for name in real_sandbox.nodes:
        info = nodes[name]["status"]["nodeInfo"]
        assert info["kubeletVersion"] == "v1.37.2" and info["containerRuntimeVersion"].startswith("containerd://")
        seen = _run_pod(real_sandbox, real_kube, ns, name)
        machine = json.loads(real_sandbox.layout.machine_file(name).read_text())
        assert len(seen.visible) == 1 and seen.visible[0] in set(_uuids(machine)), f"not a device of {name}"
        assert len(seen.gpu_nodes) == 1


def _uuids(doc: object) -> Iterator[str]:
    """Every GPU and MIG device UUID in a simulated machine's state."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "uuid" and isinstance(value, str):
                yield value
            else:
                yield from _uuids(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _uuids(item)


@pytest.fixture
def new_plugin(real_sandbox: Sandbox) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """A new plugin pod's process on the last node, started in that node's namespaces as a rolling update's new
    DaemonSet pod would be (its own pod UID); yields it, its registration socket and its log."""
    node = real_sandbox.nodes[-1]
    node_dir = real_sandbox.layout.node(node)
    spec = AgentSpec.read(node_dir / "agent.json")
    (agent,) = [p for p in real_sandbox.status.processes if p.name == f"node-{node}"]
    enter = ["nsenter", f"--mount=/proc/{agent.pid}/ns/mnt", f"--net=/proc/{agent.pid}/ns/net", "--"]
    log_path = real_sandbox.layout.log(f"plugin-{node}-rolling")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*enter, *spec.plugin_argv, "--pod-uid", "rolling", "--metrics-port", "0"],  # the old pod holds its port
            env={**spec.plugin_env, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    kubelet = node_dir / "kubelet"  # the node's /var/lib/kubelet
    _, registration = socket_paths(kubelet / "plugins", kubelet / "plugins_registry", DEFAULT_DRIVER_NAME, "rolling")
    yield proc, registration, log_path
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _plugin_pid(sandbox: Sandbox, node: str) -> int:
    """The node agent's plugin (not the rolling update's)."""
    root = str(sandbox.layout.node(node) / "driver-root")
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if entry.name.isdigit() and "kubelet_plugin" in argv and root in argv and "rolling" not in argv:
                found.append(int(entry.name))
    assert len(found) == 1, found
    return found[0]


def test_a_rolling_update_hands_the_node_over_and_keeps_serving_claims(
    real_sandbox: Sandbox, real_kube: Kube, ns: str, new_plugin: tuple[subprocess.Popen[bytes], Path, Path]
) -> None:
    node = real_sandbox.nodes[-1]
    proc, registration, log = new_plugin
    until(lambda: "waiting for it to exit" in log.read_text(), "the new plugin to wait for the old one", timeout=60)
    assert not registration.exists(), "the new plugin must not serve while the old one owns the node"
    assert len(_run_pod(real_sandbox, real_kube, ns, node).visible) == 1  # served by the old plugin

    os.kill(_plugin_pid(real_sandbox, node), signal.SIGTERM)  # the update retires the old pod
    until(registration.exists, "the new plugin serving", timeout=60)
    assert len(_run_pod(real_sandbox, real_kube, ns, node).visible) == 1  # served by the new plugin

    proc.send_signal(signal.SIGTERM)  # and back: the node agent's restarted plugin takes over again
    assert proc.wait(30) == 0
    assert len(_run_pod(real_sandbox, real_kube, ns, node).visible) == 1
