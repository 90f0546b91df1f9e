"""The real node's pure parts and helpers, without namespaces: configuration files, the driver's device
layout (agreeing with the plugin's), cgroup bookkeeping on a fake hierarchy, the kubelet choice, the forwarder."""

from __future__ import annotations

import socket
import threading
import tomllib
from pathlib import Path

import pytest

from kubelet_plugin.cdi_specs import mig_cap_minor
from sandbox.realnode import cgroups, config, devices, launch
from sandbox.realnode.forward import Forwarder, bind_host_listener

NODE = config.NodeConfig(
    "sim-node-1", 1, "/dra-sandbox-x/sim-node-1", "sandbox.local/pause:3.10", Path("/usr/sbin/runc"), Path("/ca.crt")
)


def test_containerd_config_is_toml_with_cdi_runc_and_the_local_pause_image() -> None:
    doc = tomllib.loads(config.containerd_toml(NODE))
    assert doc["version"] == 3
    runtime = doc["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    assert runtime["cdi_spec_dirs"] == ["/etc/cdi", "/var/run/cdi"]
    assert runtime["containerd"]["runtimes"]["runc"]["options"] == {
        "BinaryName": "/usr/sbin/runc",
        "SystemdCgroup": False,
    }
    assert doc["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "sandbox.local/pause:3.10"


def test_each_node_has_its_own_bridge_subnet_and_addresses() -> None:
    import json

    net = json.loads(config.cni_conflist(NODE))
    bridge = net["plugins"][0]
    assert bridge["bridge"] == "cni1" and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.88.1.0/24"}]]
    kubelet = config.kubelet_config(NODE)
    assert kubelet["address"] == kubelet["healthzBindAddress"] == "10.77.0.2"
    assert kubelet["cgroupRoot"] == "/dra-sandbox-x/sim-node-1" and kubelet["readOnlyPort"] == 0


def test_mig_minors_follow_the_layout_the_plugin_assumes() -> None:
    lines = dict(devices.mig_minor_lines([0, 3]))
    assert lines["config"] == 1 and lines["monitor"] == 2
    for gpu in (0, 3):
        for gi in (0, 7, 14):
            assert lines[f"gpu{gpu}/gi{gi}/access"] == mig_cap_minor({}, gpu, gi)
            for ci in (0, 7):
                assert lines[f"gpu{gpu}/gi{gi}/ci{ci}/access"] == mig_cap_minor({}, gpu, gi, ci)
    assert len(lines) == 2 + 2 * devices.MINORS_PER_GPU


def test_simulated_majors_avoid_every_registered_one() -> None:
    proc_devices = "Character devices:\n  1 mem\n234 foo\n233 bar\n\nBlock devices:\n232 blk\n"
    assert devices.free_majors(2, proc_devices) == [232, 231]


def _fake_v1(root: Path) -> None:
    for controller in ("cpuset", "memory", "pids"):
        (root / controller).mkdir(parents=True)
        (root / controller / "cgroup.procs").write_text("")
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")


def test_cgroups_are_made_in_every_hierarchy_and_removed_deepest_first(tmp_path: Path) -> None:
    _fake_v1(tmp_path)
    assert cgroups.create("dra-sandbox-1", "n0", tmp_path) == "/dra-sandbox-1/n0"
    assert sorted(p.parent.parent.name for p in tmp_path.glob("*/dra-sandbox-1/n0")) == ["cpuset", "memory", "pids"]
    assert cgroups.pids("dra-sandbox-1", tmp_path) == set()
    assert cgroups.remove("dra-sandbox-1", tmp_path, timeout=0) == []
    assert cgroups.leftovers("dra-sandbox-1", tmp_path) == []


def test_the_sandbox_group_is_stable_per_work_directory() -> None:
    assert cgroups.sandbox_group(Path("/a")) == cgroups.sandbox_group(Path("/a")) != cgroups.sandbox_group(Path("/b"))


def test_kubelet_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "why_not_real", lambda: "real nodes need root")
    assert launch.resolve_kubelet(None) == ("simulated", "using the simulated kubelet: real nodes need root")
    assert launch.resolve_kubelet("simulated") == ("simulated", None)
    with pytest.raises(ValueError, match="--kubelet real: real nodes need root"):
        launch.resolve_kubelet("real")
    with pytest.raises(ValueError, match="--kubelet: 'fake' is not one of real, simulated"):
        launch.resolve_kubelet("fake")
    monkeypatch.setattr(launch, "why_not_real", lambda: None)
    assert launch.resolve_kubelet(None) == ("real", None)


def test_the_forwarder_relays_both_ways_until_either_side_closes() -> None:
    upstream = socket.create_server(("127.0.0.1", 0))
    port = upstream.getsockname()[1]

    def echo() -> None:
        conn, _ = upstream.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data.upper())

    threading.Thread(target=echo, daemon=True).start()
    listener = bind_host_listener()
    forwarder = Forwarder(listener, port)
    forwarder.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as client:
            client.sendall(b"hello")
            assert client.recv(1024) == b"HELLO"
            client.shutdown(socket.SHUT_WR)
            assert client.recv(1024) == b""  # the upstream's close comes back
    finally:
        forwarder.stop()
        upstream.close()
