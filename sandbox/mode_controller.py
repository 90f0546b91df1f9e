"""The mode controller in the sandbox (``python -m controller``), started by ``up`` once the plugins publish and the
CRDs and DeviceClasses are installed. It acts only on nodes labelled ``gpu.dra-driver.dev/dynamic-modes=true``
(the default policy's opt-in; no sandbox node carries it until a user or a test labels one), with the timers of
``POLICY`` so that a change follows demand within seconds. Log: ``<workdir>/logs/mode-controller.log``. Its explain
listener's URL (``dra-gpu explain ... --controller URL``) is recorded in ``<workdir>/mode-controller.json`` for
``sandbox status``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from api.names import API_VERSION
from controller.planner.policy import KIND, OPT_IN_LABEL
from sandbox.atomic import write_atomic
from sandbox.layout import Layout
from sandbox.ports import pick_free_ports
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


def record_file(layout: Layout) -> Path:
    return layout.root / "mode-controller.json"


def explain_url(layout: Layout) -> str | None:
    """The running sandbox's mode controller's explain URL; None when none was started (no GPU profile)."""
    try:
        return str(json.loads(record_file(layout).read_text())["explain"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def spec(layout: Layout, kubeconfig: Path) -> ProcessSpec:
    policy = layout.root / "mode-policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY, sort_keys=False))
    (explain_port,) = pick_free_ports(1)
    write_atomic(record_file(layout), (json.dumps({"explain": f"http://127.0.0.1:{explain_port}"}) + "\n").encode())
    argv = (
        sys.executable, "-m", "controller", "--kubeconfig", str(kubeconfig), "--policy", str(policy),
        "--address", "127.0.0.1", "--port", "0", "--explain-port", str(explain_port), "--resync-seconds", "2",
        "--lease-namespace", "kube-system",
    )  # fmt: skip
    return ProcessSpec("mode-controller", argv, layout.log("mode-controller"))
