"""NodeGpuModes on the node: GpuModesWatch.reconcile against the simulated NVML (the real NVML code path), with a
stand-in for the two API calls it makes (LIST ResourceClaims, PATCH status)."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import kubelet_plugin
from api.gpumodes import API_VERSION, KIND, parse_status
from api.partitioning import GpuMode, TimeSlice, Whole
from dra_driver.driver_root import discover_driver_files
from dra_driver.inventory import Gpu, Inventory
from dra_driver.k8s import MERGE_PATCH, ApiError
from dra_driver.nvml import mig
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from kubelet_plugin.locks import GpuLocks
from kubelet_plugin.modes_hardware import NvmlModeHardware
from kubelet_plugin.modes_watch import STATE_FILE, GpuModesWatch, load_applied
from kubelet_plugin.sharing import DriverTools
from nvml_sim.build import library_path
from nvml_sim.control import SimulatedMachine
from nvml_sim.driver_install import calls_log, install
from tests.conftest import MachineFactory

NODE, DRIVER = "node-a", "gpu.dra-driver.dev"


class ApiStandIn:
    """``list`` answers with the claims given; ``patch`` calls are recorded. Not an API server."""

    def __init__(self) -> None:
        self.claims: list[dict[str, Any]] = []
        self.patches: list[tuple[str, Any]] = []
        self.fail: ApiError | None = None

    def list(self, path: str, **query: str) -> list[dict[str, Any]]:
        assert path == "/apis/resource.k8s.io/v1/resourceclaims"
        if self.fail is not None:
            raise self.fail
        return self.claims

    def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH, **query: str) -> dict[str, Any]:
        self.patches.append((path, body))
        return {}


class CountingHardware(NvmlModeHardware):
    resets = 0

    def reset(self, gpu_index: int, gpu_uuid: str) -> None:
        self.resets += 1
        super().reset(gpu_index, gpu_uuid)


@dataclass
class Node:
    sim: SimulatedMachine
    nvml: Nvml
    api: ApiStandIn
    state_dir: Path
    prepared: dict[str, list[str]] = field(default_factory=dict)
    config: GpuMode = field(default_factory=Whole)
    inv: Inventory | None = None
    watch: GpuModesWatch | None = None
    published: list[frozenset[str]] = field(default_factory=list)  # the GPUs left out at each republish
    on_publish: Callable[[], None] | None = None

    def rescan(self) -> None:
        self.inv = discover(self.nvml, self.sim.sysfs_root())

    def republish(self) -> None:
        self.rescan()
        assert self.watch is not None
        self.published.append(self.watch.draining())
        if self.on_publish is not None:
            self.on_publish()

    def gpu(self, index: int = 0) -> Gpu:
        assert self.inv is not None
        return self.inv.gpus[index]

    def make_watch(self, partitionable: bool = False, tools: DriverTools | None = None) -> GpuModesWatch:
        """``tools``: the driver root's tools; by default none (no nvidia-smi: no reset)."""
        self.rescan()
        hardware = CountingHardware(self.nvml, tools or DriverTools(self.state_dir, {}))
        self.watch = GpuModesWatch(
            self.api,  # type: ignore[arg-type]
            NODE,
            DRIVER,
            "v1",
            self.state_dir / STATE_FILE,
            hardware,
            GpuLocks(),
            lambda: self.inv,  # type: ignore[arg-type,return-value]
            lambda g: self.config,
            lambda: self.prepared,
            lambda: {f"gpu-{g.minor}": g.index for g in self.inv.gpus} if self.inv else {},
            self.republish,
            partitionable,
        )
        return self.watch

    def desire(self, *gpus: dict[str, Any], generation: int = 1, status: dict[str, Any] | None = None) -> None:
        assert self.watch is not None
        obj = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": NODE, "generation": generation, "resourceVersion": "1"},
            "spec": {"gpus": list(gpus)},
        }
        if status is not None:
            obj["status"] = status
        self.watch._on_event("MODIFIED", obj)

    def last_status(self) -> dict[str, Any]:
        path, body = self.api.patches[-1]
        assert path == f"/apis/{API_VERSION}/nodegpumodes/{NODE}/status"
        return body["status"]  # type: ignore[no-any-return]

    def gpu_state(self, uuid: str) -> tuple[str, str, str | None]:
        entry = next(g for g in self.last_status()["gpus"] if g["uuid"] == uuid)
        return entry["mode"], entry["state"], entry.get("reason")


@pytest.fixture
def node(machine: MachineFactory, tmp_path: Path) -> Iterator[Callable[..., Node]]:
    sessions: list[Nvml] = []

    def make(profile: str) -> Node:
        sim = machine(profile, init=False)
        nvml = Nvml()
        nvml.open()
        sessions.append(nvml)
        return Node(sim, nvml, ApiStandIn(), tmp_path)

    yield make
    for s in sessions:
        s.close()


def test_idle_gpu_is_switched_published_and_reported_applied(node: Callable[..., Node]) -> None:
    n = node("dgx-h100")  # Hopper: a MIG mode change takes effect without a reset
    watch = n.make_watch()
    uuid = n.gpu(0).uuid
    assert n.gpu(0).mig_enabled
    n.desire({"uuid": uuid, "mode": "timeslice:4"})
    assert watch.reconcile() is False
    assert not n.gpu(0).mig_enabled  # time-slicing needs MIG off; the inventory was read again
    assert watch.applied_mode(uuid) is not None and watch.applied_mode(uuid).mode == TimeSlice(4)  # type: ignore[union-attr]
    assert n.gpu_state(uuid) == ("timeslice:4", "Applied", None)
    status = parse_status(n.last_status())
    assert status.observed_generation == 1 and status.conditions[0].status == "True"
    assert load_applied(n.state_dir / STATE_FILE)[uuid].mode == TimeSlice(4)  # a restarted plugin keeps it


def test_unchanged_status_is_not_written_again(node: Callable[..., Node]) -> None:
    n = node("dgx-h100")
    watch = n.make_watch()
    uuid = n.gpu(0).uuid
    n.desire({"uuid": uuid, "mode": "timeslice:4"})
    watch.reconcile()
    n.desire({"uuid": uuid, "mode": "timeslice:4"}, status=n.last_status())  # our own write, seen by the watch
    writes = len(n.api.patches)
    watch.reconcile()
    assert len(n.api.patches) == writes


def test_gpu_with_a_prepared_claim_stays_and_is_pending_naming_it(node: Callable[..., Node]) -> None:
    n = node("dgx-h100")
    watch = n.make_watch()
    uuid = n.gpu(1).uuid
    n.prepared = {uuid: ["team-a/train"]}
    n.desire({"uuid": uuid, "mode": "timeslice:4"})
    assert watch.reconcile() is True  # look again later
    assert n.gpu(1).mig_enabled and watch.applied_mode(uuid) is None
    assert n.gpu_state(uuid) == ("whole", "Pending", "claim team-a/train is allocated or prepared on it")
    n.prepared = {}  # the claim was unprepared
    assert watch.reconcile() is False
    assert n.gpu_state(uuid)[:2] == ("timeslice:4", "Applied")


def test_gpu_with_an_allocated_claim_on_its_device_is_pending(node: Callable[..., Node]) -> None:
    n = node("dgx-h100")
    watch = n.make_watch()
    g = n.gpu(2)
    n.api.claims = [
        {
            "metadata": {"namespace": "ns", "name": "waiting"},
            "status": {
                "allocation": {"devices": {"results": [{"driver": DRIVER, "pool": NODE, "device": f"gpu-{g.minor}"}]}}
            },
        },
        {  # another node's device of the same name
            "metadata": {"namespace": "ns", "name": "elsewhere"},
            "status": {
                "allocation": {"devices": {"results": [{"driver": DRIVER, "pool": "node-b", "device": "gpu-0"}]}}
            },
        },
    ]
    n.desire({"uuid": g.uuid, "mode": "shared"}, {"uuid": n.gpu(0).uuid, "mode": "timeslice:2"})
    watch.reconcile()
    assert n.gpu_state(g.uuid)[1:] == ("Pending", "claim ns/waiting is allocated or prepared on it")
    assert n.gpu_state(n.gpu(0).uuid)[1] == "Applied"


def test_mig_mode_change_needing_a_reset_that_cannot_be_done_is_reset_required_once(node: Callable[..., Node]) -> None:
    n = node("dgx-a100")  # Ampere: MIG mode changes wait for a GPU reset; this driver root has no nvidia-smi
    watch = n.make_watch()
    uuid = n.gpu(0).uuid
    n.desire({"uuid": uuid, "mode": "timeslice:4"})
    watch.reconcile()
    mode, state, reason = n.gpu_state(uuid)
    assert (mode, state) == ("whole", "ResetRequired")
    assert reason is not None and "nvidia-smi" in reason
    assert watch.applied_mode(uuid) is None  # slices keep publishing what the GPU is
    watch.reconcile()
    assert isinstance(watch.hardware, CountingHardware) and watch.hardware.resets == 1  # not retried in a loop


def test_mig_mode_change_needing_a_reset_is_applied_with_the_driver_roots_nvidia_smi(
    node: Callable[..., Node], tmp_path: Path
) -> None:
    n = node("dgx-a100")  # Ampere, MIG on: MIG off for time-slicing waits for a GPU reset
    n.rescan()
    assert n.inv is not None
    root = install(tmp_path / "driver-root", n.inv.driver_version, library_path())
    watch = n.make_watch(tools=DriverTools.of(discover_driver_files(root)))
    uuid = n.gpu(0).uuid
    assert n.gpu(0).mig_enabled
    n.desire({"uuid": uuid, "mode": "timeslice:4"})
    assert watch.reconcile() is False
    assert n.gpu_state(uuid) == ("timeslice:4", "Applied", None)
    assert not n.gpu(0).mig_enabled  # the inventory, read again through NVML after the reset
    gpus = n.sim.state()["gpus"]
    assert gpus[0]["mig"] == {"current": 0, "pending": 0}
    assert all(g["mig"] == {"current": 1, "pending": 1} for g in gpus[1:])  # only the named GPU was reset
    calls = [json.loads(line) for line in calls_log(root).read_text().splitlines()]
    assert [(c["program"], c["argv"]) for c in calls] == [("nvidia-smi", ["--gpu-reset", "-i", uuid])]
    n.desire({"uuid": uuid, "mode": "mig"}, generation=2)  # and back: MIG on waits for a reset too
    assert watch.reconcile() is False
    assert n.gpu_state(uuid)[:2] == ("mig", "Applied") and n.gpu(0).mig_enabled
    assert isinstance(watch.hardware, CountingHardware) and watch.hardware.resets == 2


def test_static_layout_is_created_exactly(node: Callable[..., Node]) -> None:
    n = node("dgx-a100")
    watch = n.make_watch(partitionable=False)
    uuid = n.gpu(3).uuid
    n.desire({"uuid": uuid, "mode": "mig", "migLayout": ["1g.5gb", "3g.20gb", "2g.10gb"]})
    watch.reconcile()
    assert sorted(d.profile for d in n.gpu(3).mig_devices) == ["1g.5gb", "2g.10gb", "3g.20gb"]
    assert n.gpu_state(uuid)[:2] == ("mig", "Applied")
    assert n.last_status()["gpus"][0]["migLayout"] == ["1g.5gb", "3g.20gb", "2g.10gb"]


def test_impossible_layout_is_refused_and_leaves_no_instance(node: Callable[..., Node]) -> None:
    n = node("dgx-a100")
    watch = n.make_watch()
    uuid = n.gpu(0).uuid
    n.desire({"uuid": uuid, "mode": "mig", "migLayout": ["7g.40gb", "1g.5gb"]})
    watch.reconcile()
    mode, state, reason = n.gpu_state(uuid)
    assert (mode, state) == ("whole", "Refused") and reason is not None and "compute slices" in reason
    assert n.sim.mig_partitions() == []


def test_layout_failing_half_way_is_rolled_back(node: Callable[..., Node], monkeypatch: pytest.MonkeyPatch) -> None:
    n = node("dgx-a100")
    watch = n.make_watch()
    uuid = n.gpu(0).uuid
    real = mig.create_partition
    calls: list[str] = []

    def second_fails(nvml: Nvml, index: int, profile: str, start: int) -> mig.MigPartition:
        calls.append(profile)
        if len(calls) == 2:
            raise OSError("simulated failure")
        return real(nvml, index, profile, start)

    monkeypatch.setattr(mig, "create_partition", second_fails)
    n.desire({"uuid": uuid, "mode": "mig", "migLayout": ["3g.20gb", "2g.10gb", "1g.5gb"]})
    watch.reconcile()
    assert len(calls) == 2
    assert n.gpu_state(uuid)[1] == "Refused" and "none kept" in (n.gpu_state(uuid)[2] or "")
    assert n.sim.mig_partitions() == []


def test_dropped_entry_returns_the_gpu_to_the_partitioning_config(node: Callable[..., Node]) -> None:
    n = node("dgx-h100")
    watch = n.make_watch()
    uuid = n.gpu(0).uuid
    n.desire({"uuid": uuid, "mode": "timeslice:4"})
    watch.reconcile()
    n.desire(generation=2)
    watch.reconcile()
    assert watch.applied_mode(uuid) is None
    assert n.gpu_state(uuid)[:2] == ("whole", "Applied")
    assert load_applied(n.state_dir / STATE_FILE) == {}
    n.desire(generation=3, status=n.last_status())
    watch.reconcile()
    assert n.last_status()["gpus"] == []  # nothing named any more


def test_gpu_not_on_this_node_is_refused(node: Callable[..., Node]) -> None:
    n = node("dgx-h100")
    watch = n.make_watch()
    n.desire({"uuid": "GPU-00000000-0000-0000-0000-000000000000", "mode": "whole"})
    watch.reconcile()
    status = n.last_status()
    assert status["gpus"] == []  # no observed mode to report for it
    condition = status["conditions"][0]
    assert condition["status"] == "False" and f"node {NODE} has no healthy GPU" in condition["message"]


def test_no_gpu_changes_while_claims_cannot_be_listed(node: Callable[..., Node]) -> None:
    n = node("dgx-h100")
    watch = n.make_watch()
    uuid = n.gpu(0).uuid
    n.api.fail = ApiError("GET", "/apis/resource.k8s.io/v1/resourceclaims", 403, "forbidden")
    n.desire({"uuid": uuid, "mode": "timeslice:4"})
    assert watch.reconcile() is True
    mode, state, reason = n.gpu_state(uuid)
    assert (mode, state) == ("whole", "Pending") and reason is not None and "could not be listed" in reason
    assert n.gpu(0).mig_enabled and watch.applied_mode(uuid) is None


def test_devices_are_withdrawn_during_the_change_and_come_back_in_the_new_mode(node: Callable[..., Node]) -> None:
    n = node("dgx-h100")
    watch = n.make_watch()
    uuid = n.gpu(0).uuid
    n.desire({"uuid": uuid, "mode": "timeslice:4"})
    watch.reconcile()
    assert n.published[0] == {uuid}  # first: withdrawn
    assert n.published[1] == frozenset() and watch.draining() == frozenset()  # then back, already applied
    assert n.gpu_state(uuid)[:2] == ("timeslice:4", "Applied")


def test_claim_allocated_while_the_gpu_is_withdrawn_stops_the_change(node: Callable[..., Node]) -> None:
    n = node("dgx-h100")
    watch = n.make_watch()
    g = n.gpu(0)
    allocated = {"driver": DRIVER, "pool": NODE, "device": f"gpu-{g.minor}"}
    claim = {
        "metadata": {"namespace": "ns", "name": "late"},
        "status": {"allocation": {"devices": {"results": [allocated]}}},
    }

    def scheduler_was_faster() -> None:
        if n.published[-1]:  # the withdrawal: the scheduler had allocated just before it
            n.api.claims = [claim]

    n.on_publish = scheduler_was_faster
    n.desire({"uuid": g.uuid, "mode": "timeslice:4"})
    assert watch.reconcile() is True
    assert n.gpu_state(g.uuid) == ("whole", "Pending", "claim ns/late is allocated or prepared on it")
    assert n.gpu(0).mig_enabled and watch.applied_mode(g.uuid) is None and watch.draining() == frozenset()


def test_the_plugin_makes_no_nvml_call_of_its_own() -> None:
    """Every NVML call lives in dra_driver.nvml (the hardware boundary); the plugin calls its functions."""
    package = Path(kubelet_plugin.__file__).parent
    found = [
        f"{path.name}:{node.lineno} {node.args[0].value}"
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and str(node.args[0].value).startswith("nvml")
    ]
    assert found == []
