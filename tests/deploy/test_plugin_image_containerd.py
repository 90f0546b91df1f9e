"""The simulated-GPU image in the real container runtime: a private containerd (the sandbox's build) imports the
archive with ``ctr images import`` and runc runs the entry point, which starts the plugin on the image's simulated
NVML. Skipped where the host cannot run real nodes (sandbox/realnode/host.py) or containerd is not built yet."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.wait import until
from sandbox.binaries import NODE_SPECS, locate_all
from sandbox.plugin_image import build
from sandbox.realnode.host import why_not_real

pytestmark = [pytest.mark.slow, pytest.mark.realnode]
CONTAINERD_FIELDS = ("containerd", "containerd_shim_runc_v2", "ctr")


@pytest.fixture
def containerd(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(ctr, socket) of a containerd of its own, in a private mount namespace, stopped afterwards."""
    reason = why_not_real()
    if reason:
        pytest.skip(reason)
    found, _ = locate_all(lambda _: None, tuple(s for s in NODE_SPECS if s.field in CONTAINERD_FIELDS))
    if set(found) != set(CONTAINERD_FIELDS):
        pytest.skip("containerd is not built: python -m sandbox.binaries --node")
    socket = tmp_path / "containerd.sock"
    config = tmp_path / "config.toml"
    config.write_text(
        f'version = 3\nroot = "{tmp_path}/root"\nstate = "{tmp_path}/state"\n[grpc]\n  address = "{socket}"\n'
    )
    path = f"{found['containerd_shim_runc_v2'].parent}:/usr/sbin:/usr/bin:/sbin:/bin"
    argv = ["unshare", "--mount", "--propagation", "private", "--", str(found["containerd"]), "--config", str(config)]
    with open(tmp_path / "containerd.log", "wb") as log:
        daemon = subprocess.Popen(argv, env={"PATH": path}, stdout=log, stderr=subprocess.STDOUT)
    try:
        ctr = found["ctr"]
        until(lambda: _ctr(ctr, socket, "version").returncode == 0, "containerd answering", timeout=60)
        yield ctr, socket
    finally:
        daemon.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.wait(timeout=30)
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)


def _ctr(ctr: Path, socket: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ctr), "--address", str(socket), "--namespace", "k8s.io", *args],
        env={"PATH": f"{ctr.parent}:/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_ctr_imports_the_simulated_image_and_the_plugin_starts_in_it(containerd: tuple[Path, Path]) -> None:
    ctr, socket = containerd
    built = build(simulated=True)
    imported = _ctr(ctr, socket, "images", "import", "--local", str(built.archive.path))
    assert imported.returncode == 0, imported.stderr
    listed = _ctr(ctr, socket, "images", "ls", "--quiet")
    assert built.archive.ref in listed.stdout.split()
    # without a command: the image's entry point, the plugin itself, which first wants its node's name
    plain = _ctr(ctr, socket, "run", "--rm", built.archive.ref, "plain-test")
    assert "dra-gpu-plugin: error: --node-name (env NODE_NAME) is required" in plain.stdout + plain.stderr
    env = ["--env", "SIMULATED_GPUS=true", "--env", "SIMULATED_GPU_PROFILE=l4", "--env", "NODE_NAME=node-a"]
    command = ["python", "-m", "nvml_sim.entrypoint"]
    run = _ctr(ctr, socket, "run", "--rm", *env, built.archive.ref, "sim-test", *command)
    out = run.stdout + run.stderr
    assert "simulated GPUs: l4 machine /var/lib/dra-gpu/simulated-gpus/machine.json" in out
    # the plugin loaded the image's prebuilt simulated NVML from the driver root, then (no cluster) stopped
    assert "driver 580.95.05 under /var/lib/dra-gpu/simulated-gpus/driver-root: 6 libraries" in out
    assert run.returncode != 0
