"""The simulated-GPU entry point (what the chart's simulatedGpus runs) against the sandbox's real API server: it
racks the named machine, execs the unchanged plugin, and the plugin publishes that machine's GPUs for its node."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from dra_driver.k8s import Kube
from e2e.conftest import SimNode
from e2e.fixtures import Sandbox
from e2e.plugin_node import DRIVER, terminate
from e2e.wait import until
from nvml_sim.hardware import MACHINE_PROFILES

pytestmark = pytest.mark.sandbox


def test_the_entry_point_publishes_the_named_profiles_gpus(
    sandbox: Sandbox, kube: Kube, sim_node: Callable[..., SimNode]
) -> None:
    node = sim_node("simep")
    root = node.root
    env = {"PATH": "/usr/bin:/bin", "SIMULATED_GPUS": "true", "SIMULATED_GPU_PROFILE": "dgx-h100"}
    argv = [sys.executable, "-m", "nvml_sim.entrypoint", "--root", str(root / "sim"), "--"]
    argv += ["--node-name", node.name, "--kubeconfig", str(sandbox.kubeconfig), "--driver-name", DRIVER]
    argv += ["--state-dir", str(root / "state"), "--cdi-dir", str(root / "cdi")]
    argv += ["--plugins-dir", str(root / "plugins"), "--registry-dir", str(root / "plugins_registry")]
    log = root / "plugin.log"
    with open(log, "wb") as out:
        plugin = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        selector = f"spec.nodeName={node.name},spec.driver={DRIVER}"

        def devices() -> list[dict[str, Any]] | None:
            assert plugin.poll() is None, log.read_text()[-3000:]
            slices = kube.list("/apis/resource.k8s.io/v1/resourceslices", fieldSelector=selector)
            found = [d for s in slices for d in s["spec"].get("devices", [])]
            return found if len(found) == len(MACHINE_PROFILES["dgx-h100"].gpus) else None  # whole GPUs by default

        published = until(devices, f"the 8 GPUs of {node.name} from the entry point's plugin (log {log})", timeout=90)
        assert {str(d["attributes"]["productName"]["string"]) for d in published} == {"NVIDIA H100 80GB HBM3"}
        assert "simulated GPUs: dgx-h100 machine" in log.read_text()
    finally:
        terminate(plugin, log.read_text)
