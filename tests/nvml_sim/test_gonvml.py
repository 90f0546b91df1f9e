"""NVIDIA's Go bindings (go-nvml) drive the simulated NVML: tools/gonvml calls every simulated symbol they bind.

Built with Go into the cache on first use (about a minute cold); skipped where Go is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nvml_sim import codes, csource, events
from nvml_sim.control import SimulatedMachine
from tests.nvml_sim.foreign import sim_env
from tools.gonvml.build import GoUnavailable, build

pytestmark = pytest.mark.slow

# go-nvml calls the newest version of a versioned symbol that the library exports, so these older ones (which
# the simulator also implements, for older clients) are never reached through its API.
SUPERSEDED = {
    "nvmlInit",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetHandleByPciBusId",
    "nvmlDeviceGetPciInfo",
    "nvmlDeviceGetPciInfo_v2",
    "nvmlDeviceGetAttributes",
    "nvmlComputeInstanceGetInfo",
    "nvmlEventSetWait",
    "nvmlDeviceGetGpuInstancePossiblePlacements",
    *(f"nvmlDeviceGet{k}RunningProcesses{v}" for k in ("Compute", "Graphics", "MPSCompute") for v in ("", "_v2")),
}
# what the simulator answers with something other than SUCCESS, on purpose
NOT_SUPPORTED_ON_A100 = {"nvmlDeviceGetNumaNodeId", "nvmlDeviceGetGpuFabricInfo", "nvmlDeviceGetGpuFabricInfoV",
                         "nvmlDeviceGetGpuFabricInfo_v4"}  # fmt: skip
ERROR = "libnvidia-ml.so.1 (dra-driver simulated NVML):"


@pytest.fixture(scope="module")
def gonvml() -> Path:
    try:
        return build()
    except GoUnavailable as exc:
        pytest.skip(str(exc))


def run(gonvml: Path, env: dict[str, str], sim: SimulatedMachine | None) -> tuple[int, list[dict[str, Any]], str]:
    """Run gonvml; when it waits for an event, inject XID 43 on GPU 0 from here (another process)."""
    records = []
    with subprocess.Popen(
        [str(gonvml), "-wait", "30s"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            records.append(json.loads(line))
            if records[-1]["call"] == "waiting" and sim is not None:
                sim.inject_xid(0, 43)
        stderr = proc.stderr.read()
        return proc.wait(timeout=60), records, stderr


def by_call(records: list[dict[str, Any]], gpu: int | None = None) -> dict[str, dict[str, Any]]:
    return {r["call"]: r for r in records if gpu is None or r["gpu"] == gpu}


@pytest.mark.parametrize("profile", ["dgx-a100", "dgx-h100"])
def test_go_nvml_gets_an_answer_from_every_simulated_symbol_it_binds(
    gonvml: Path, tmp_path: Path, profile: str
) -> None:
    sim = SimulatedMachine.create(tmp_path / "node.json", profile)
    rc, records, stderr = run(gonvml, sim_env(sim.state_path), sim)
    assert rc == 0, stderr
    assert "undefined symbol" not in stderr and ERROR not in stderr
    go_bound = {n for n, f in csource.api()["functions"].items() if "go-nvml" in f["by"]}
    wanted = (set(csource.python_prototypes()) & go_bound) - SUPERSEDED | {"nvmlErrorString"}
    assert wanted - {r["call"] for r in records} == set()
    failing = {r["call"] for r in records if r["ret"] != codes.SUCCESS}
    expected = {"nvmlDeviceGetNumaNodeId"} if profile == "dgx-h100" else NOT_SUPPORTED_ON_A100
    assert failing == expected | {"nvmlEventSetWait_v2"}  # the first wait times out
    gpu0, gpu1 = by_call(records, 0), by_call(records, 1)
    assert by_call(records)["nvmlDeviceGetCount_v2"]["value"] == 8
    assert {r["ret"] for r in records if r["call"] in expected} == {codes.NOT_SUPPORTED}
    memory, memory_v2 = gpu0["nvmlDeviceGetMemoryInfo"]["value"], gpu0["nvmlDeviceGetMemoryInfo_v2"]["value"]
    assert memory["Used"] == memory_v2["Reserved"] > 0 and memory_v2["Used"] == 0
    assert gpu0["nvmlDeviceGetVirtualizationMode"]["value"] == 0
    assert gpu0["nvmlDeviceGetPersistenceMode"]["value"] == 1
    assert gpu1["nvmlDeviceGetP2PStatus"]["value"] == 0  # NVLink
    assert gpu1["nvmlDeviceGetTopologyCommonAncestor"]["value"] == (20 if profile == "dgx-a100" else 40)
    waits = [r for r in records if r["call"] == "nvmlEventSetWait_v2"]
    assert waits[0]["ret"] == codes.TIMEOUT and 100 <= waits[0]["value"] < 2000
    assert (waits[1]["ret"], waits[1]["gpu"], waits[1]["value"]) == (0, 0, [events.XID_CRITICAL_ERROR, 43])
    if profile == "dgx-h100":
        assert gpu0["nvmlDeviceGetGpuFabricInfoV"]["value"] == [3, 1]  # completed, healthy


@pytest.mark.parametrize("broken", [{"PYTHONPATH": "/nonexistent"}, {"PYTHONHOME": "/nonexistent"}])
def test_with_the_embedded_python_broken_go_nvml_gets_an_error_not_an_empty_machine(
    gonvml: Path, tmp_path: Path, broken: dict[str, str]
) -> None:
    sim = SimulatedMachine.create(tmp_path / "node.json", "single-a100")
    rc, records, stderr = run(gonvml, {**sim_env(sim.state_path), **broken}, None)
    assert rc == 3
    assert by_call(records)["nvmlInit_v2"]["ret"] == codes.LIBRARY_NOT_FOUND
    assert by_call(records)["nvmlDeviceGetCount_v2"]["ret"] == codes.UNINITIALIZED
    assert stderr.count(ERROR) == 1


def test_the_symbol_table_is_current_with_the_pinned_go_nvml(gonvml: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.gonvml.api_table", "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
