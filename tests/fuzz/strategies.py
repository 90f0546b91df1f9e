"""Hypothesis strategies for nasty user input: quantity-like text, huge numbers, deep nesting, unicode, wrong
types, and opaque configs and AdmissionReviews built from them. Shared by the fuzz tests and bench_fuzz."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from api.config import API_VERSION
from tests.webhook.reviews import obj, opaque, review

# Deterministic in CI (the same examples every run); bench/bench_fuzz.py explores at random.
FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "K", "i", "GB", "ki"]


@st.composite
def quantity_texts(draw: st.DrawFn) -> str:
    """Strings shaped like quantities, often absurd ones: long digit runs, huge exponents, stray signs."""
    sign = draw(st.sampled_from(["", "", "+", "-", "--", " "]))
    digits = draw(
        st.one_of(
            st.from_regex(r"[0-9]{0,25}", fullmatch=True),
            st.integers(0, 6000).map(lambda n: "9" * n),
            st.integers(0, 2000).map(lambda n: "0" * n + "1"),
        )
    )
    fraction = draw(st.one_of(st.just(""), st.from_regex(r"\.[0-9]{0,30}", fullmatch=True), st.just(".")))
    tail = draw(
        st.one_of(
            st.sampled_from(SUFFIXES),
            st.integers(-(10**12), 10**12).map(lambda e: f"e{e}"),
            st.integers(-40, 40).map(lambda e: f"E{e:+d}"),
            st.integers(0, 3000).map(lambda n: "e" + "9" * n),
        )
    )
    junk = draw(st.sampled_from(["", "", "", " ", "x", "\u0664", "\x00", "e", "."]))
    return sign + digits + fraction + tail + junk


nasty_text = st.one_of(
    st.text(max_size=40),
    quantity_texts(),
    st.sampled_from(["", "null", "NaN", "1e999999999", "8Ei", "\u202e", "\U0001f600", "GPU-0", "0"]),
)
huge_ints = st.one_of(  # up to 4,000 digits: json.dumps cannot write more (raw_json writes longer ones as text)
    st.integers(-(2**70), 2**70),
    st.integers(0, 4000).map(lambda n: 10**n),
    st.integers(0, 4000).map(lambda n: -(10**n)),
)
scalars = st.one_of(st.none(), st.booleans(), huge_ints, st.floats(allow_nan=True, allow_infinity=True), nasty_text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(nasty_text, st.sampled_from(["0", "1"])), children, max_size=4),
    ),
    max_leaves=20,
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value most of the time, anything at all otherwise."""
    return st.one_of(value, value, value, json_values)


mps_configs = st.fixed_dictionaries(
    {},
    optional={
        "defaultActiveThreadPercentage": maybe(st.integers(-5, 105)),
        "defaultPinnedDeviceMemoryLimit": maybe(quantity_texts()),
        "defaultPerDevicePinnedMemoryLimit": maybe(
            st.dictionaries(
                st.one_of(st.sampled_from(["0", "1", "GPU-a", "MIG-b"]), nasty_text),
                maybe(quantity_texts()),
                max_size=3,
            )
        ),
    },
)
sharing = st.fixed_dictionaries(
    {},
    optional={
        "strategy": maybe(st.sampled_from(["TimeSlicing", "MPS", "Exclusive"])),
        "timeSlicingConfig": maybe(
            st.fixed_dictionaries({}, optional={"interval": maybe(st.sampled_from(["Short", "Long", "Quick"]))})
        ),
        "mpsConfig": maybe(mps_configs),
    },
)
parameters = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": maybe(st.just(API_VERSION)),
        "kind": maybe(st.sampled_from(["GpuConfig", "MigDeviceConfig", "TpuConfig"])),
        "sharing": maybe(sharing),
        "extra": json_values,
    },
)


@st.composite
def raw_json(draw: st.DrawFn) -> bytes:
    """JSON text that is sometimes not JSON: nesting thousands deep, long numbers, NaN, cut short, bad UTF-8."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        levels = draw(st.integers(1, 3000))
        text = "[" * levels + "]" * levels if draw(st.booleans()) else '{"a": ' * levels + "1" + "}" * levels
    elif choice == 1:
        text = f'{{"apiVersion": "{API_VERSION}", "kind": "GpuConfig", "n": {"7" * draw(st.integers(1, 6000))}}}'
    elif choice == 2:
        text = json.dumps(draw(parameters))
        text = text[: draw(st.integers(0, len(text)))]
    else:
        text = json.dumps(draw(parameters if choice < 5 else json_values))
    data = text.encode()
    return data + b"\xff" if draw(st.integers(0, 20)) == 0 else data


@st.composite
def reviews(draw: st.DrawFn) -> bytes:
    """AdmissionReview bodies: well-formed ones around fuzzed configs, and mutated or foreign ones."""
    kind = draw(st.sampled_from(["ResourceClaim", "ResourceClaimTemplate", "DeviceClass", "Pod"]))
    version = draw(st.sampled_from(["v1", "v1beta1", "v1beta2"]))
    entries = draw(
        st.lists(
            st.one_of(
                parameters.map(opaque),
                parameters.map(lambda p: opaque(p, driver="other.example")),
                json_values,
            ),
            max_size=3,
        )
    )
    body: dict[str, Any] | None = obj(kind, version, entries)
    if draw(st.integers(0, 10)) == 0:
        body = None
    operation = draw(st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"]))
    raw = json.loads(review(kind, version, body, operation=operation))
    if operation == "UPDATE" and draw(st.booleans()):
        raw["request"]["oldObject"] = draw(st.one_of(st.just(body), json_values))
    for _ in range(draw(st.integers(0, 2))):  # break the document somewhere
        path = draw(st.sampled_from(["request", "request.kind", "request.uid", "request.object", "apiVersion", "kind"]))
        target, *rest = path.split(".")
        holder: Any = raw
        for key in [target, *rest][:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder[path.split(".")[-1]] = draw(json_values)
    return json.dumps(raw).encode()


YAML_PIECES = ["a", "b", ": ", "- ", "\n", "  ", "&a ", "*a", "&b ", "*b", "[", "]", "{", "}", ", ", "<<: ", "!!int ", "0x",
               "1", "9" * 80, "1:2", "'x'", '"y"', "---\n", "? ", "|\n", "#", "\t", "~", ".inf", "1e999", "!!binary "]  # fmt: skip
yaml_texts = st.one_of(st.lists(st.sampled_from(YAML_PIECES), max_size=60).map("".join), st.text(max_size=80))
