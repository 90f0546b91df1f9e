"""Fuzzing the parsers of user input with seeded nasty inputs (``python -m bench.bench_fuzz [--inputs N]
[--seed S]``): huge exponents, long digit strings, deep nesting, alias bombs, unicode, wrong types.

Each input goes through one target: the opaque-config decoder (parsed mappings and raw JSON), both quantity
parsers (``api.config.quantity`` and the CEL port), CEL selectors with quantity literals, the webhook's review
handler and the bounded YAML loader. A target may answer or raise its own error (ConfigError, ValueError,
CelError, BadReview); anything else is a crash. Prints inputs, crashes and the slowest input of each target.
Never asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.config import API_VERSION, decode_opaque
from api.config.quantity import parse_bytes
from api.config.strict import load_yaml_documents
from api.errors import ConfigError
from controller.webhook import BadReview, decide
from dra_driver.cel import CelError, compile_selector, device_view, parse_quantity

DRIVER = "gpu.dra-driver.dev"
P = "spec.devices.config[0].opaque.parameters"
FREEZES = ["1e999999999", "1e10000000", "1e5000", "99999999999999999999Ei", "1" * 5000, "1e-999999999"]
SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "K", "i", "GB"]
UNICODE = ["\u202e", "\U0001f600", "\u0664", "\x00", "\ufeff", "é", "\u2028", "\ud7ff", "Ω"]
YAML_PIECES = ["a", "b", ": ", "- ", "\n", "  ", "&a ", "*a", "&b ", "*b", "[", "]", "{", "}", ", ", "<<: ",
               "!!int ", "!!float ", "!!timestamp ", "0x", "1", "9" * 80, "1:2", "'x'", '"y"', "---\n", "? ", "#",
               "\t", "~", ".inf", "1e999", "2020-13-45", "!!binary "]  # fmt: skip


class Nasty:
    """A seeded source of nasty values."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def length(self, most: int, rare: int) -> int:
        """Mostly up to ``most``; one time in twenty up to ``rare``."""
        return self.rng.randint(0, rare if self.rng.random() < 0.05 else most)

    def quantity(self) -> str:
        r = self.rng
        if r.random() < 0.02:
            return r.choice(FREEZES)
        sign = r.choice(["", "", "", "+", "-", " "])
        digits = "".join(r.choice("0123456789") for _ in range(self.length(12, 6000)))
        fraction = r.choice(["", "", "."]) + "".join(r.choice("0123456789") for _ in range(self.length(3, 40)))
        tail = r.choice(
            [
                r.choice(SUFFIXES),
                f"e{r.randint(-(10**12), 10**12)}",
                f"E{r.randint(-40, 40):+d}",
                "e" + "9" * self.length(3, 3000),
            ]
        )
        junk = r.choice(["", "", "", "", " ", "x", *UNICODE])
        return sign + digits + fraction + tail + junk

    def text(self) -> str:
        r = self.rng
        pick = r.random()
        if pick < 0.5:
            return self.quantity()
        if pick < 0.8:
            return "".join(chr(r.randint(0, 0xD7FF)) for _ in range(self.length(8, 200)))
        return r.choice(["", "MPS", "TimeSlicing", "Short", API_VERSION, "GpuConfig", "null", "NaN", *UNICODE])

    def scalar(self) -> Any:
        r = self.rng
        return r.choice(
            [
                None,
                r.random() < 0.5,
                r.randint(-(2**70), 2**70),
                10 ** r.randint(0, 4000),
                2**63 - r.randint(-2, 2),
                r.choice([float("nan"), float("inf"), -0.0, 1e308, 50.0]),
                self.text(),
                self.text(),
            ]
        )

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        if depth > 6 or r.random() < 0.6:
            return self.scalar()
        if r.random() < 0.5:
            return [self.value(depth + 1) for _ in range(r.randint(0, 4))]
        return {self.text(): self.value(depth + 1) for _ in range(r.randint(0, 4))}

    def maybe(self, good: Any) -> Any:
        return good if self.rng.random() < 0.75 else self.value()

    def parameters(self) -> dict[str, Any]:
        r = self.rng
        mps = {
            "defaultActiveThreadPercentage": self.maybe(r.randint(-5, 105)),
            "defaultPinnedDeviceMemoryLimit": self.maybe(self.quantity()),
            "defaultPerDevicePinnedMemoryLimit": self.maybe(
                {r.choice(["0", "1", "GPU-a", "MIG-b", self.text()]): self.maybe(self.quantity()) for _ in range(2)}
            ),
        }
        sharing = {
            "strategy": self.maybe(r.choice(["TimeSlicing", "MPS", "Exclusive"])),
            "timeSlicingConfig": self.maybe({"interval": self.maybe(r.choice(["Short", "Long", "Quick"]))}),
            "mpsConfig": self.maybe({k: v for k, v in mps.items() if r.random() < 0.6}),
        }
        doc = {
            "apiVersion": self.maybe(API_VERSION),
            "kind": self.maybe(r.choice(["GpuConfig", "MigDeviceConfig", "TpuConfig"])),
            "sharing": self.maybe({k: v for k, v in sharing.items() if r.random() < 0.6}),
        }
        if r.random() < 0.1:
            doc["extra"] = self.value()  # an unknown field
        return {k: v for k, v in doc.items() if r.random() < 0.9}

    def nested(self) -> str:
        levels = self.length(100, 200_000)
        if self.rng.random() < 0.5:
            return "[" * levels + "]" * levels
        return '{"a": ' * levels + "1" + "}" * levels

    def dumps(self, value: Any) -> str:
        try:
            return json.dumps(value)
        except ValueError:  # an integer json cannot write: the generator made it, not the target
            return '{"n": ' + "7" * 5000 + "}"

    def raw_json(self) -> bytes:
        r = self.rng
        pick = r.randint(0, 6)
        if pick == 0:
            text = self.nested()
        elif pick == 1:
            text = f'{{"apiVersion": "{API_VERSION}", "kind": "GpuConfig", "n": {"7" * self.length(30, 8000)}}}'
        elif pick == 2:
            text = self.dumps(self.parameters())
            text = text[: r.randint(0, len(text))]
        elif pick == 3:
            text = self.dumps(self.parameters()).replace('"MPS"', '"MPS", "strategy": "MPS"')
        else:
            text = self.dumps(self.parameters() if pick < 6 else self.value())
        data = text.encode("utf-8")
        return data + b"\xff" if r.random() < 0.05 else data

    def review(self) -> bytes:
        r = self.rng
        kind = r.choice(["ResourceClaim", "ResourceClaimTemplate", "DeviceClass", "Pod"])
        version = r.choice(["v1", "v1beta1", "v1beta2"])
        config = [
            r.choice([{"opaque": {"driver": DRIVER, "parameters": self.parameters()}}, self.value()])
            for _ in range(r.randint(0, 3))
        ]
        spec: dict[str, Any] = {"devices": {"requests": [{"name": "gpu"}], "config": config}}
        if kind == "ResourceClaimTemplate":
            spec = {"spec": spec}
        operation = r.choice(["CREATE", "UPDATE", "DELETE"])
        request = {
            "uid": self.maybe("u-1"),
            "kind": self.maybe({"group": "resource.k8s.io", "version": version, "kind": kind}),
            "operation": self.maybe(operation),
            "object": self.maybe({"metadata": {"name": "c"}, "spec": spec}),
            "oldObject": self.maybe({"metadata": {"name": "c"}, "spec": spec}) if operation == "UPDATE" else None,
        }
        doc = {
            "apiVersion": self.maybe("admission.k8s.io/v1"),
            "kind": self.maybe("AdmissionReview"),
            "request": request,
        }
        if r.random() < 0.1:
            return self.raw_json()
        return self.dumps(doc).encode()

    def yaml(self) -> str:
        r = self.rng
        pick = r.randint(0, 5)
        if pick == 0:
            width, depth = r.randint(2, 12), r.randint(2, 12)
            lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
            lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, depth)]
            return "\n".join(lines)
        if pick == 1:
            return r.choice(["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a [b, [c, *a]]\n"])
        if pick == 2:
            return "a: " + "[" * self.length(100, 100_000)
        if pick == 3:
            return "a: " + r.choice(["1" * self.length(100, 6000), "1" + ":1" * self.length(50, 50_000)])
        return "".join(r.choice(YAML_PIECES) for _ in range(r.randint(0, 60)))


@dataclass
class Target:
    name: str
    run: Callable[[Any], object]
    make: Callable[[], Any]
    expected: tuple[type[BaseException], ...]
    inputs: int = 0
    refused: int = 0
    crashes: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    slowest: tuple[float, str] = (0.0, "")

    def feed(self) -> None:
        value = self.make()
        start = time.perf_counter()
        try:
            self.run(value)
        except self.expected:
            self.refused += 1
        except Exception as e:  # the point of fuzzing: whatever escapes is recorded, not raised
            self.crashes.append((f"{type(e).__name__}: {e}"[:200], _shown(value)))
        took = time.perf_counter() - start
        self.inputs += 1
        self.seconds += took
        if took > self.slowest[0]:
            self.slowest = (took, _shown(value))


def _shown(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value if isinstance(value, str) else None
    if text is None:
        try:
            text = repr(value)
        except ValueError:
            text = "<a value with an integer too long to print>"
    return ascii(text[:80]) + (f"... ({len(text)} characters)" if len(text) > 80 else "")


def _took(parse: Callable[..., object], *args: Any) -> float:
    """Seconds ``parse(*args)`` takes to answer or refuse."""
    begin = time.perf_counter()
    with contextlib.suppress(ConfigError, ValueError):
        parse(*args)
    return time.perf_counter() - begin


def targets(nasty: Nasty) -> list[tuple[Target, int]]:
    """(target, share of the inputs in parts per hundred)."""
    view = device_view("d", {"name": "x", "capacity": {"memory": {"value": "80Gi"}}})

    def selector(text: str) -> object:
        literal = json.dumps(text)
        expression = f'isQuantity({literal}) && device.capacity["d"].memory.isGreaterThan(quantity({literal}))'
        return compile_selector(expression).matches(view)

    return [
        (Target("config quantity (parse_bytes)", lambda v: parse_bytes(v, "f"), nasty.quantity, (ConfigError,)), 22),
        (Target("CEL quantity (parse_quantity)", parse_quantity, nasty.quantity, (ValueError,)), 22),
        (Target("decode_opaque (mapping)", lambda v: decode_opaque(v, P), nasty.parameters, (ConfigError,)), 18),
        (Target("decode_opaque (raw JSON)", lambda v: decode_opaque(v, P), nasty.raw_json, (ConfigError,)), 14),
        (Target("webhook decide (review)", lambda v: decide(v, DRIVER), nasty.review, (BadReview,)), 14),
        (Target("YAML loader", load_yaml_documents, nasty.yaml, (ConfigError,)), 8),
        (Target("CEL selector with quantity()", selector, nasty.quantity, (CelError,)), 2),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_fuzz")
    parser.add_argument("--inputs", type=int, default=120_000)
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args()
    nasty = Nasty(args.seed)
    plan = targets(nasty)
    start = time.perf_counter()
    for target, share in plan:
        for _ in range(args.inputs * share // 100):
            target.feed()
    total = time.perf_counter() - start
    print(f"{'target':<32} {'inputs':>8} {'refused':>8} {'crashes':>7} {'mean':>9} {'slowest':>9}  slowest input")
    for target, _ in plan:
        mean = target.seconds / max(target.inputs, 1)
        print(
            f"{target.name:<32} {target.inputs:>8,} {target.refused:>8,} {len(target.crashes):>7} "
            f"{mean * 1e3:>7.3f}ms {target.slowest[0] * 1e3:>7.1f}ms  {target.slowest[1]}"
        )
    for text in FREEZES:  # the inputs that used to hang the plugin and the webhook
        mps = {"defaultPinnedDeviceMemoryLimit": text}
        params = {"apiVersion": API_VERSION, "kind": "GpuConfig", "sharing": {"strategy": "MPS", "mpsConfig": mps}}
        decoding, parsing = _took(decode_opaque, params, P), _took(parse_quantity, text)
        print(
            f"was a freeze: {_shown(text)}: decode_opaque {decoding * 1e3:.3f}ms, parse_quantity {parsing * 1e3:.3f}ms"
        )
    inputs = sum(t.inputs for t, _ in plan)
    crashes = [(t.name, *c) for t, _ in plan for c in t.crashes]
    print(f"{inputs:,} inputs in {total:.1f} s, {len(crashes)} crashes (seed {args.seed})")
    for name, error, value in crashes[:20]:
        print(f"CRASH {name}: {error}\n      input: {value}")


if __name__ == "__main__":
    main()
