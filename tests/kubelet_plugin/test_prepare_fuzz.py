"""Prepare and unprepare of arbitrary claims, property-based, through the real gRPC server (a unix socket) in
front of the real GpuDriver (FakeHardware, a real checkpoint and CDI directory, a simulated DGX A100).

Claims carry random opaque configs (random JSON trees, deep nesting, huge numbers, long strings, wrong
types, hostile quantities, valid configs) and random references (valid and invalid namespaces, names,
UIDs). Whatever comes in: every claim gets an answer (devices or an error that says what is wrong, never a
gRPC failure), and after the unprepare nothing is left: no checkpoint entry, no CDI spec, no MIG partition,
no time-slice interval, no MPS setting. Three bugs these properties found have a test each at the end.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.gen.dra.v1 import api_pb2_grpc as dra_v1
from api.names import API_VERSION
from dra_driver.kubeletplugin import protocol as proto
from dra_driver.kubeletplugin.protocol import ClaimRef, PrepareResult
from dra_driver.kubeletplugin.server import PluginServer
from dra_driver.kubeletplugin.validation import claim_problem
from kubelet_plugin.driver import GpuDriver
from tests.kubelet_plugin.conftest import DRIVER, NODE, Node, claim
from tests.kubelet_plugin.fuzz_claims import ANY_JSON, DEVICES, HUGE_INTS, QUANTITY_TEXT, REQUEST, Sent

# Reproducible in CI: the same examples every run, nothing written into the repository.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_ERROR = 2000  # characters: what the kubelet puts into an event must stay readable

# --- what the driver says, by kind of mistake: every error must be one of these ----------------------
_FIELD = r"status\.allocation\.devices\.config\[\d+\].*: "  # keys may hold any character
EXPLAINED = re.compile(
    "|".join(
        (
            r"invalid claim (namespace|name|uid) .*: (must|is) ",  # the gRPC edge
            rf"invalid configuration: {_FIELD}\S",  # an opaque config, with the field's path
            r"invalid configuration: device: '.*' is not a device name this driver publishes",
            r"claim \S+ not found: it was deleted",
            r"claim \S+ has UID .*, the kubelet asked for .*: it was deleted and re-created",
            r"claim is not allocated \(yet\)",
            r"claim \S+ has no devices allocated by driver ",
            r"device .* is allocated from pool .*, not this node",
            r"device \S+: this node has no healthy GPU with minor number \d+",
            r"device \S+: GPU \d+ offers no MIG \S+ at \d+",
            r".*placement \d+ is busy.*; the scheduler will retry once",
            r"GPU \S+ is time-sliced with interval \S+ by .* this claim asks for \S+: use the same interval",
            r"devices .* are served by different MPS control daemons .*: put each MPS device in a claim of its own",
            r"device\(s\) .* use MPS and .* do not: a CUDA process that reaches an MPS control daemon",
            r"GPU \S+: .* use MPS \(the GPU in EXCLUSIVE_PROCESS compute mode.*: one GPU cannot do both",
        )
    ),
    re.DOTALL,
)


# --- the server under test ---------------------------------------------------------------------------
class DriverHandler:
    """The plugin's DRA handler without the daemon around it: prepare and unprepare go to the driver."""

    def __init__(self, driver: GpuDriver) -> None:
        self.driver = driver

    def prepare(self, claims: list[ClaimRef], answered: threading.Event | None = None) -> dict[str, PrepareResult]:
        return self.driver.prepare(claims, answered=answered)

    def unprepare(self, claims: list[ClaimRef]) -> dict[str, str]:
        return self.driver.unprepare(claims)

    def health(self, timeout: float) -> list[tuple[str, str, int, str]]:
        return []


@dataclass
class Served:
    node: Node
    driver: GpuDriver
    stub: dra_v1.DRAPluginStub

    def round_trip(self, sent: list[Sent]) -> dict[str, PrepareResult]:
        """Prepare, then unprepare ``sent`` over gRPC; checks every answer, and that nothing is left."""
        node = self.node
        self.reset()
        for s in sent:
            if s.claim is not None:
                node.api.add(s.claim)
        refs = [s.ref for s in sent]
        request = proto.prepare_request(proto.DRA_V1, refs)
        prepared = proto.prepare_results_from_pb(self.stub.NodePrepareResources(request, timeout=30))
        assert set(prepared) == {r.uid for r in refs}
        for ref in refs:
            result = prepared[ref.uid]
            if result.error:
                assert result.devices == ()
                assert len(result.error) < MAX_ERROR, f"{len(result.error)} characters: {result.error[:300]}"
                assert EXPLAINED.match(result.error), f"{ref.uid!r}: {result.error[:MAX_ERROR]}"
            else:
                assert result.devices and all(d.cdi_device_ids for d in result.devices)
                assert any(ref.uid in name for name in node.specs())
            problem = claim_problem(ref)
            if problem is not None:  # refused at the edge
                assert result.error == problem

        request = proto.unprepare_request(proto.DRA_V1, refs)
        unprepared = proto.unprepare_errors_from_pb(self.stub.NodeUnprepareResources(request, timeout=30))
        assert unprepared == {r.uid: claim_problem(r) or "" for r in refs}

        assert node.recorded() == {} and self.driver.checkpoint.claims() == {}
        assert node.specs() == []
        assert node.hardware.partitions == {} and node.hardware.intervals == {} and node.hardware.mps == set()
        assert node.hardware.compute_modes == {} and node.hardware.dead == set()
        return prepared

    def reset(self) -> None:
        """Forget what a failed example left, so that the next one (Hypothesis shrinking) starts clean."""
        leftover = [record.claim for record in self.driver.checkpoint.claims().values()]
        if leftover:
            self.driver.unprepare(leftover)
        for spec in self.node.cdi_dir.glob("*.json"):
            spec.unlink()
        self.node.hardware.partitions.clear()
        self.node.hardware.intervals.clear()
        self.node.hardware.mps.clear()
        self.node.hardware.dead.clear()
        self.node.hardware.compute_modes.clear()
        self.node.api.claims.clear()


@pytest.fixture
def served(node: Node, tmp_path: Path) -> Iterator[Served]:
    driver = node.driver()
    server = PluginServer(DRIVER, tmp_path / "p" / "dra.sock", tmp_path / "r" / "reg.sock", DriverHandler(driver))
    server.start()
    channel = grpc.insecure_channel(f"unix://{server.dra_socket}")
    try:
        yield Served(node, driver, dra_v1.DRAPluginStub(channel))
    finally:
        channel.close()
        server.stop(grace=0.5)


def test_any_claims_are_answered_and_leave_nothing_after_unprepare(served: Served) -> None:
    @FUZZ
    @given(REQUEST)
    def check(sent: list[Sent]) -> None:
        served.round_trip(sent)

    check()


PINNED_FIELD = "status.allocation.devices.config[0].opaque.parameters.sharing.mpsConfig.defaultPinnedDeviceMemoryLimit"


def test_any_pinned_memory_limit_is_applied_or_refused_naming_the_field(served: Served) -> None:
    """The field of the freeze: whatever it holds, the claim is prepared or refused with the field named."""

    @settings(FUZZ, max_examples=200)
    @given(st.one_of(QUANTITY_TEXT, HUGE_INTS, st.integers(), ANY_JSON), st.sampled_from(["gpu-0", "gpu-5-shared"]))
    def check(limit: Any, device: str) -> None:
        sharing = {"strategy": "MPS", "mpsConfig": {"defaultPinnedDeviceMemoryLimit": limit}}
        parameters = {"apiVersion": API_VERSION, "kind": "GpuConfig", "sharing": sharing}
        entry = {"source": "FromClaim", "requests": [], "opaque": {"driver": DRIVER, "parameters": parameters}}
        document = claim("f00d", [device], config=[entry])
        (result,) = served.round_trip([Sent(ClaimRef("ns", "f00d", "claim-f00d"), document)]).values()
        if limit is None:
            assert result.error == ""
        elif result.error:
            assert result.error.startswith(f"invalid configuration: {PINNED_FIELD}: ")

    check()


# --- valid configs are prepared ----------------------------------------------------------------------
def _quantity_forms(n: int) -> list[str]:
    forms = [str(n)]
    for suffix, power in (("Ki", 10), ("Mi", 20), ("Gi", 30)):
        if n % 2**power == 0:
            forms.append(f"{n // 2**power}{suffix}")
    if n % 1000 == 0:
        forms.append(f"{n // 1000}k")
        forms.append(f"{n // 1000}e3")
    return forms


VALID_QUANTITY = st.one_of(
    st.integers(1, 2**63 - 1),
    st.integers(1, 2**33).map(lambda n: n * 2**30),
    st.integers(1, 10**9).map(lambda n: n * 1000),
).flatmap(lambda n: st.sampled_from(_quantity_forms(n)))
VALID_MPS = st.fixed_dictionaries(
    {"strategy": st.just("MPS")},
    optional={
        "mpsConfig": st.fixed_dictionaries(
            {},
            optional={
                "defaultActiveThreadPercentage": st.integers(1, 100),
                "defaultPinnedDeviceMemoryLimit": VALID_QUANTITY,
                "defaultPerDevicePinnedMemoryLimit": st.dictionaries(
                    st.sampled_from(["0", "1", "GPU-abc", "MIG-abc/1"]), VALID_QUANTITY, max_size=2
                ),
            },
        )
    },
)
VALID_TIME_SLICING = st.fixed_dictionaries(
    {"strategy": st.just("TimeSlicing")},
    optional={
        "timeSlicingConfig": st.fixed_dictionaries(
            {}, optional={"interval": st.sampled_from(["Default", "Short", "Medium", "Long"])}
        )
    },
)


@st.composite
def valid_claims(draw: st.DrawFn) -> Sent:
    """One claim for one device of this node with a config that fits the device."""
    device = draw(st.sampled_from(DEVICES))
    sharing: dict[str, Any] | None
    if "-mig-" in device:
        parameters: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "MigDeviceConfig"}
        sharing = draw(st.none() | VALID_MPS)
    else:
        parameters = {"apiVersion": API_VERSION, "kind": "GpuConfig"}
        sharing = draw(st.none() | VALID_MPS | VALID_TIME_SLICING)
    if sharing is not None:
        parameters["sharing"] = sharing
    uid = str(draw(st.uuids()))
    result = {"request": "gpu", "driver": DRIVER, "pool": NODE, "device": device}
    source = draw(st.sampled_from(["FromClaim", "FromClass"]))
    entry = {"source": source, "requests": ["gpu"], "opaque": {"driver": DRIVER, "parameters": parameters}}
    allocation = {"devices": {"results": [result], "config": [entry]}}
    meta = {"uid": uid, "name": "c", "namespace": "ns", "resourceVersion": "1"}
    return Sent(ClaimRef("ns", uid, "c"), {"metadata": meta, "status": {"allocation": allocation}})


def test_valid_configs_on_devices_of_this_node_are_prepared(served: Served) -> None:
    @settings(FUZZ, max_examples=150)
    @given(valid_claims())
    def check(sent: Sent) -> None:
        (result,) = served.round_trip([sent]).values()
        assert result.error == ""

    check()


# --- bugs the properties above found (fixed) -------------------------------------------------------
def test_a_uid_that_cannot_name_a_cdi_device_is_refused_at_the_edge_before_any_side_effect(served: Served) -> None:
    uid = "-0b6e1a52"
    ref = served.node.api.add(claim(uid, ["gpu-1-mig-1g-5gb-0"]))
    request = proto.prepare_request(proto.DRA_V1, [ref])
    result = proto.prepare_results_from_pb(served.stub.NodePrepareResources(request, timeout=30))[uid]
    assert result.error.startswith("invalid claim uid '-0b6e1a52': ")
    assert served.node.hardware.calls == []


def test_an_unknown_key_is_shortened_in_the_error(served: Served) -> None:
    parameters = {"apiVersion": API_VERSION, "kind": "GpuConfig", "sharing": {"x" * 5000: None}}
    entry = {"source": "FromClaim", "opaque": {"driver": DRIVER, "parameters": parameters}}
    ref = served.node.api.add(claim("a1", ["gpu-0"], config=[entry]))
    request = proto.prepare_request(proto.DRA_V1, [ref])
    error = proto.prepare_results_from_pb(served.stub.NodePrepareResources(request, timeout=30))["a1"].error
    assert error.startswith("invalid configuration: status.allocation.devices.config[0].opaque.parameters.sharing.x")
    assert "unknown field" in error and len(error) < MAX_ERROR


def test_a_claim_sharing_one_device_twice_is_prepared(served: Served) -> None:
    shares = [
        {
            "request": request,
            "driver": DRIVER,
            "pool": NODE,
            "device": "gpu-5-shared",
            "shareID": share,
            "consumedCapacity": {"compute": "10", "memory": "1Gi"},
        }
        for request, share in (
            ("a", "6a50a817-feb2-4b9e-883c-96471c448a0b"),
            ("b", "0f5e7b41-edcd-449d-89fe-c34997001e11"),
        )
    ]
    document = claim("5a1", [])
    document["status"]["allocation"]["devices"]["results"] = shares
    ref = served.node.api.add(document)
    request = proto.prepare_request(proto.DRA_V1, [ref])
    result = proto.prepare_results_from_pb(served.stub.NodePrepareResources(request, timeout=30))["5a1"]
    assert result.error == ""
    assert len({i for d in result.devices for i in d.cdi_device_ids}) == 2
