"""The pure parts of installing the chart (sandbox/realnode/helm_driver.py) and of the kind tier's setup: values
for a cluster with kube-proxy, ``sandbox up --driver`` refusals, the device node list, the shipped kind config."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from dra_driver.k8s import Kube
from sandbox.realnode import devices
from sandbox.realnode.helm_driver import chart_values, describe_pods, driver_problem
from tests.deploy.test_chart_sources import VALUES, schema_errors

ROOT = Path(__file__).resolve().parents[2]
PROC_DEVICES = "Character devices:\n  1 mem\n195 nvidia\n234 used\n\nBlock devices:\n  8 sd\n"


def test_values_without_a_server_reach_the_api_server_through_its_service() -> None:
    values = chart_values("dgx-a100", "mig", None, tag="upgrade")
    assert schema_errors(VALUES | values) == []
    assert "extraEnv" not in values
    assert values["image"] == {"repository": "sandbox.local/dra-gpu-plugin", "tag": "upgrade", "pullPolicy": "Never"}


@pytest.mark.parametrize(
    ("driver", "kubelet", "profile", "problem"),
    [
        ("process", "simulated", "", None),
        ("helm", "real", "dgx-a100", None),
        ("helm", None, "dgx-a100", None),  # real by default; the host check comes later
        ("helm", "simulated", "dgx-a100", "--driver helm needs --kubelet real"),
        ("helm", "real", "", "--driver helm needs a GPU --profile"),
        ("operator", "real", "dgx-a100", "--driver: 'operator' is not one of process, helm"),
    ],
)
def test_driver_problems_name_the_flag(driver: str, kubelet: str | None, profile: str, problem: str | None) -> None:
    found = driver_problem(driver, kubelet, profile)
    assert (found is None) if problem is None else (found is not None and found.startswith(problem))


def test_the_device_node_list_is_what_the_sandbox_creates(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    listed = devices.device_nodes([0, 1], PROC_DEVICES)
    assert devices.create_device_nodes(tmp_path, [0, 1], PROC_DEVICES) == len(listed)
    for rel, major, minor, mode in listed:
        st = (tmp_path / rel).stat()
        assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == major and os.minor(st.st_rdev) == minor
        assert stat.S_IMODE(st.st_mode) == mode
    assert ("nvidiactl", 195, 255, 0o666) in listed and ("nvidia1", 195, 1, 0o666) in listed
    assert all(major != 234 for _, major, _, _ in listed)  # taken in /proc/devices


def test_the_kind_config_turns_on_cdi_and_the_dra_gates_and_has_a_worker() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "kind" / "cluster.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["featureGates"] == {"DRAPartitionableDevices": True, "DRADeviceTaints": True}
    (patch,) = config["containerdConfigPatches"]
    cri = tomllib.loads(patch)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["enable_cdi"] is True and "/var/run/cdi" in cri["cdi_spec_dirs"]
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker"]


class _Pods:
    """A Kube that lists these pods."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods

    def list(self, path: str, **query: str) -> list[dict[str, Any]]:
        assert path == "/api/v1/namespaces/dra-gpu/pods" and "component=kubelet-plugin" in query["labelSelector"]
        return self.pods


def test_a_failed_install_describes_each_plugin_pod() -> None:
    crashing: dict[str, Any] = {
        "metadata": {"name": "gpu-dra-gpu-plugin-abcde"},
        "spec": {"nodeName": "sim-node-0"},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                    "restartCount": 4,
                }
            ],
        },
    }
    pending: dict[str, Any] = {
        "metadata": {"name": "gpu-dra-gpu-plugin-fghij"},
        "spec": {},
        "status": {"phase": "Pending"},
    }
    assert describe_pods(cast(Kube, _Pods([crashing, pending]))) == (
        "gpu-dra-gpu-plugin-abcde on sim-node-0: Running; waiting CrashLoopBackOff, 4 restarts, last exit 1 (Error) | "
        "gpu-dra-gpu-plugin-fghij on unscheduled: Pending; "
    )


def test_the_cli_passes_the_driver_to_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main

    argv = ["sandbox", "up", "--workdir", str(tmp_path / "sb"), "--kubelet", "simulated", "--driver", "helm"]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("--driver helm needs --kubelet real")
    assert not (tmp_path / "sb").exists()
    with pytest.raises(SystemExit):
        main(["sandbox", "up", "--driver", "docker"])
    assert "argument --driver: invalid choice: 'docker'" in capsys.readouterr().err
