"""A node without the NVIDIA driver under the driver root: the plugin refuses to start, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_without_a_driver_under_the_driver_root_the_plugin_exits_1_with_one_line(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "kubelet_plugin", "--node-name", "n", "--driver-root", str(tmp_path / "empty")]
    argv += ["--state-dir", str(tmp_path / "state"), "--cdi-dir", str(tmp_path / "cdi")]
    env = {k: v for k, v in os.environ.items() if k not in ("DRIVER_ROOT", "NVML_LIB", "LD_LIBRARY_PATH")}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert f"cannot start: --driver-root: no NVIDIA driver under {tmp_path / 'empty'}: " in line
    assert "libnvidia-ml.so.1, libcuda.so.1 not found" in line and "--driver-root (env DRIVER_ROOT)" in line
    assert not (tmp_path / "state").exists() and not (tmp_path / "cdi").exists()  # refused before touching anything
