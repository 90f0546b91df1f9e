"""Hypothesis strategies for the prepare fuzz: claims as anyone could send them. Random opaque configs (JSON trees,
deep nesting, huge numbers, long strings, wrong types, hostile quantities, valid configs) in allocations shaped
like the scheduler's, and claim references valid and not."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from api.names import API_VERSION
from dra_driver.kubeletplugin.protocol import ClaimRef
from tests.kubelet_plugin.conftest import DRIVER, NODE

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
