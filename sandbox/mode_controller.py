"""The mode controller in the sandbox (``python -m controller``), started by ``up`` once the plugins publish and the
CRDs and DeviceClasses are installed. It acts only on nodes labelled ``gpu.dra-driver.dev/dynamic-modes=true``
(the default policy's opt-in; no sandbox node carries it until a user or a test labels one), with the timers of
``POLICY`` so that a change follows demand within seconds. Log: ``<workdir>/logs/mode-controller.log``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from api.names import API_VERSION
from controller.planner.policy import KIND, OPT_IN_LABEL
from sandbox.layout import Layout
from sandbox.processes import ProcessSpec

POLICY = {
    "apiVersion": API_VERSION,
    "kind": KIND,
    "nodeSelector": {OPT_IN_LABEL: "true"},
    "pendingGraceSeconds": 1,
    "cooldownSeconds": 30,
    "intervalSeconds": 10,
    "maxChangesPerInterval": 10,
}


def spec(layout: Layout, kubeconfig: Path) -> ProcessSpec:
    policy = layout.root / "mode-policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY, sort_keys=False))
    argv = (
        sys.executable, "-m", "controller", "--kubeconfig", str(kubeconfig), "--policy", str(policy),
        "--address", "127.0.0.1", "--port", "0", "--explain-port", "0", "--resync-seconds", "2", "--lease-namespace", "kube-system",
    )  # fmt: skip
    return ProcessSpec("mode-controller", argv, layout.log("mode-controller"))
