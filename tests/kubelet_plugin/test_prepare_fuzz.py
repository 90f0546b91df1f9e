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
import string
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
        )
    ),
    re.DOTALL,
)

# --- JSON values --------------------------------------------------------------------------------------
HOSTILE_QUANTITIES = [
    "1e999999999",
    "1e10000000",
    "99999999999999999999Ei",
    "1e-999999999",
    "9" * 64,
    "9" * 65,
    "0." + "0" * 60 + "1Ei",
    "8Ei",
    "9223372036854775807",
    "9223372036854775808",
    "1e18",
    "1e19",
    "0",
    "-1Gi",
    "+1Gi",
    "1.5",
    ".5Ki",
    "1m",
    "1E-3k",
    "10GB",
    "1e",
    "Gi",
    "",
    " 1Gi",
]
QUANTITY_TEXT = st.one_of(
    st.sampled_from(HOSTILE_QUANTITIES),
    st.from_regex(
        r"[+-]?[0-9]{0,25}(\.[0-9]{0,25})?([eE][+-]?[0-9]{1,12}|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?", fullmatch=True
    ),
)
HUGE_INTS = st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 10**64, 10**65, 10**308, 10**4000, -(10**4000)])
LONG_STRINGS = st.builds(lambda c, n: c * n, st.characters(), st.integers(200, 5000))
FIELD_NAMES = [
    "apiVersion",
    "kind",
    "sharing",
    "strategy",
    "timeSlicingConfig",
    "interval",
    "mpsConfig",
    "defaultActiveThreadPercentage",
    "defaultPinnedDeviceMemoryLimit",
    "defaultPerDevicePinnedMemoryLimit",
]
KEYS = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12), st.text(min_size=50, max_size=1000))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    HUGE_INTS,
    st.floats(allow_nan=False, allow_infinity=False),  # the API server keeps no NaN or Infinity
    st.text(max_size=20),
    LONG_STRINGS,
    QUANTITY_TEXT,
)
TREES = st.recursive(
    SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEYS, kids, max_size=4), max_leaves=12
)


def _nest(depth: int, leaf: Any, as_list: bool) -> Any:
    for i in range(depth):
        leaf = [leaf] if as_list else {f"k{i}": leaf}
    return leaf


DEEP = st.builds(_nest, st.integers(1, 100), TREES, st.booleans())
ANY_JSON = st.one_of(TREES, DEEP)


def _mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], weight: int = 4) -> st.SearchStrategy[Any]:
    """``common`` ``weight`` times as often as ``rare`` (``one_of`` draws its branches about equally often)."""
    return st.sampled_from([True] * weight + [False]).flatmap(lambda common_one: common if common_one else rare)


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``value`` mostly, any JSON (a wrong type, null, a deep tree) sometimes."""
    return _mostly(value, ANY_JSON, 3)


def _add(obj: dict[str, Any], extra: tuple[str, Any] | None) -> dict[str, Any]:
    return obj if extra is None else {**obj, extra[0]: extra[1]}


def _sometimes_unknown(objects: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """``objects``, now and then with one more key (unknown, or a known one holding any JSON)."""
    return st.builds(_add, objects, _mostly(st.none(), st.tuples(KEYS, ANY_JSON), 8))


# --- opaque parameters: shaped like GpuConfig / MigDeviceConfig, with mistakes anywhere ---------------
PERCENTAGE = _maybe(st.integers(-5, 105))
PER_DEVICE_LIMITS = _maybe(
    st.dictionaries(
        _mostly(st.sampled_from(["0", "1", "GPU-x", "MIG-y/1", "x", "-1"]), KEYS), _maybe(QUANTITY_TEXT), max_size=3
    )
)
MPS_CONFIG = _sometimes_unknown(
    _mostly(
        st.fixed_dictionaries(  # the field of the freeze, hostile quantities first
            {"defaultPinnedDeviceMemoryLimit": _maybe(QUANTITY_TEXT)},
            optional={
                "defaultActiveThreadPercentage": PERCENTAGE,
                "defaultPerDevicePinnedMemoryLimit": PER_DEVICE_LIMITS,
            },
        ),
        st.fixed_dictionaries(
            {},
            optional={
                "defaultActiveThreadPercentage": PERCENTAGE,
                "defaultPinnedDeviceMemoryLimit": _maybe(QUANTITY_TEXT),
                "defaultPerDevicePinnedMemoryLimit": PER_DEVICE_LIMITS,
            },
        ),
        2,
    )
)
TIME_SLICING_CONFIG = st.fixed_dictionaries(
    {}, optional={"interval": _maybe(st.sampled_from(["Default", "Short", "Medium", "Long", "long", ""]))}
)
MIXED_SHARING = st.fixed_dictionaries(
    {"strategy": _mostly(st.sampled_from(["TimeSlicing", "MPS"]), st.sampled_from(["mps", ""]) | ANY_JSON)},
    optional={"timeSlicingConfig": _maybe(TIME_SLICING_CONFIG), "mpsConfig": _maybe(MPS_CONFIG)},
)
SHARING = _mostly(
    _sometimes_unknown(
        _mostly(
            st.fixed_dictionaries({"strategy": st.just("MPS"), "mpsConfig": _maybe(MPS_CONFIG)}),
            st.fixed_dictionaries(
                {"strategy": st.just("TimeSlicing")}, optional={"timeSlicingConfig": _maybe(TIME_SLICING_CONFIG)}
            ),
            2,
        )
    ),
    _mostly(MIXED_SHARING, ANY_JSON, 2),
    3,
)
HEAD = {
    "apiVersion": _mostly(st.just(API_VERSION), st.sampled_from(["gpu.dra-driver.dev/v1", "v1"]) | ANY_JSON, 8),
    "kind": _mostly(st.sampled_from(["GpuConfig", "MigDeviceConfig"]), st.just("Other") | ANY_JSON, 8),
}
PARAMETERS = _mostly(
    _sometimes_unknown(st.fixed_dictionaries({**HEAD, "sharing": SHARING})),
    _mostly(_sometimes_unknown(st.fixed_dictionaries(HEAD)), ANY_JSON, 1),
    3,
)
REQUESTS = ["gpu", "gpu/small", "other"]
CONFIG_ENTRY = st.fixed_dictionaries(
    {
        "source": st.sampled_from(["FromClaim", "FromClass"]),
        "opaque": st.fixed_dictionaries(
            {"driver": _mostly(st.just(DRIVER), st.just("other.example.com")), "parameters": PARAMETERS}
        ),
    },
    optional={"requests": _mostly(st.just(["gpu"]), st.lists(st.sampled_from(REQUESTS), max_size=2), 2)},
)

# --- allocation results (what the scheduler writes: API-validated strings) ---------------------------
DEVICES = [
    "gpu-0",
    "gpu-7",
    "gpu-1-mig-1g-5gb-0",
    "gpu-1-mig-1g-5gb-6",
    "gpu-2-mig-2g-10gb-4",
    "gpu-2-mig-3g-20gb-4",
    "gpu-3-mig-1g-5gb-me-2",
    "gpu-4-ts-0",
    "gpu-4-ts-1",
    "gpu-5-shared",
]
MISTAKEN_DEVICES = [
    "gpu-99",  # no such GPU
    "gpu-1-mig-2g-10gb-1",  # no such placement
    "gpu-1-mig-9g-99gb-0",  # no such profile
    "nic-0",  # not one of ours
]
BINARY_QUANTITIES = st.one_of(  # consumedCapacity, as the scheduler writes it (BinarySI)
    st.integers(0, 100).map(str), st.integers(1, 2**20).map(lambda n: f"{n * 256}Mi")
)
RESULT = st.fixed_dictionaries(
    {
        "request": _mostly(st.just("gpu"), st.sampled_from(REQUESTS)),
        "driver": _mostly(st.just(DRIVER), st.just("other.example.com"), 8),
        "pool": _mostly(st.just(NODE), st.just("node-b"), 8),
        "device": _mostly(st.sampled_from(DEVICES), st.sampled_from(MISTAKEN_DEVICES), 8),
    },
    optional={
        "shareID": st.uuids().map(str),
        "consumedCapacity": st.fixed_dictionaries(
            {}, optional={"memory": BINARY_QUANTITIES, "compute": BINARY_QUANTITIES}
        ),
    },
)
ALLOCATION = st.fixed_dictionaries(
    {
        "devices": st.fixed_dictionaries(
            {
                # one result per device: the scheduler gives a claim the same device twice only where the device
                # allows multiple allocations (test_a_claim_sharing_one_device_twice_is_prepared)
                "results": st.lists(RESULT, min_size=1, max_size=3, unique_by=lambda r: str(r["device"])),
                "config": st.lists(CONFIG_ENTRY, max_size=3),
            }
        )
    }
)
STATUS = _mostly(st.fixed_dictionaries({"allocation": ALLOCATION}), st.sampled_from([{}, {"allocation": None}]), 12)

# --- claim references, as the kubelet (or anyone on the socket) sends them ---------------------------
_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
NAMESPACES = _mostly(_LABEL, st.text(max_size=80), 12)
NAMES = _mostly(st.lists(_LABEL, min_size=1, max_size=3).map(".".join), st.text(max_size=300), 12)
UIDS = _mostly(
    st.uuids().map(str), st.text(alphabet=string.hexdigits + "-", min_size=1, max_size=8) | st.text(max_size=200), 12
)


@dataclass(frozen=True)
class Sent:
    ref: ClaimRef
    claim: dict[str, Any] | None  # what the API server holds at the ref's namespace/name (None: no claim)


@st.composite
def sent_claims(draw: st.DrawFn) -> Sent:
    ref = ClaimRef(draw(NAMESPACES), draw(UIDS), draw(NAMES))
    if draw(st.integers(0, 19)) == 0:
        return Sent(ref, None)
    uid = ref.uid if draw(st.integers(0, 19)) else str(draw(st.uuids()))
    meta = {"uid": uid, "name": ref.name, "namespace": ref.namespace, "resourceVersion": "1"}
    return Sent(ref, {"metadata": meta, "status": draw(STATUS)})


REQUEST = st.lists(sent_claims(), min_size=1, max_size=4, unique_by=lambda s: s.ref.uid)


# --- the server under test ---------------------------------------------------------------------------
class DriverHandler:
    """The plugin's DRA handler without the daemon around it: prepare and unprepare go to the driver."""

    def __init__(self, driver: GpuDriver) -> None:
        self.driver = driver

    def prepare(self, claims: list[ClaimRef]) -> dict[str, PrepareResult]:
        return self.driver.prepare(claims)

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
