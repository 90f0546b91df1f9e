"""The DRA selector CEL environment on cel-expr-python: compile once, evaluate per device.

Mirrors ``k8s.io/dynamic-resource-allocation/cel`` (``compile.go``) for resource.k8s.io/v1: one variable
``device`` with ``driver``, ``attributes[domain][id]``, ``capacity[domain][id]`` (``kubernetes.Quantity``)
and ``allowMultipleAllocations``; the extensions of the Kubernetes base environment that selectors use
(strings, sets, lists, two-variable comprehensions, optional types, ``cel.bind``) plus the quantity,
semver and regex libraries (see ``functions``). The result must be a bool (or dyn, checked at runtime).

``device`` is declared ``dyn``: type errors that Kubernetes reports at compile time inside ``device.…``
surface here at evaluation. Compiled selectors are cached by expression text. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cel_expr_python import cel

from dra_driver.cel import functions
from dra_driver.cel.device import DeviceView
from dra_driver.cel.errors import CelCompileError, CelEvalError
from dra_driver.cel.literals import index_literals
from dra_driver.cel.memo import Ref, references, source_key
from dra_driver.cel.protos import POOL

_EXTENSIONS = """\
extensions:
  - name: "bindings"
  - name: "lists"
  - name: "optional"
  - name: "sets"
  - name: "strings"
  - name: "two-var-comprehensions"
"""

_STATUS_PREFIX = re.compile(r"^[A-Z_]+: ")
_STATUS_SUFFIX = re.compile(r"\s*\[[A-Z_]+\]$")
_NO_SUCH_KEY = re.compile(r'^Key not found in map : "?(.*?)"?$')
_NO_SUCH_KEY_HINT = (
    ". consider using CEL optional chaining (.? followed by orValue()) or guarding the check with has() for"
    " optional fields"
)
_CACHE_LIMIT = 4096
_RESULTS_LIMIT = 1 << 16  # remembered results per selector (distinct device field values)


@cache
def _environment() -> Any:
    return cel.NewEnv(
        POOL,
        config=cel.NewEnvConfigFromYaml(_EXTENSIONS),
        variables={"device": cel.Type.DYN},
        functions=functions.declarations(),
    )


def _status_text(text: str) -> str:
    """cel-cpp status text without its ``CODE: `` prefix, `` [CODE]`` suffix and parser noise lines."""
    text = _STATUS_SUFFIX.sub("", _STATUS_PREFIX.sub("", text.strip()))
    return "\n".join(line for line in text.splitlines() if "<<nil>> parsetree" not in line)


def runtime_message(text: str) -> str:
    """A cel-cpp runtime error in the words kube-scheduler uses (``no such key: x`` + its hint)."""
    text = _status_text(text)
    if match := _NO_SUCH_KEY.match(text):
        return f"no such key: {match.group(1)}{_NO_SUCH_KEY_HINT}"
    return text


@dataclass(frozen=True, eq=False)
class Selector:
    """A compiled selector. ``matches`` raises CelEvalError where kube-scheduler reports a CEL runtime error."""

    expression: str
    program: Any = field(repr=False)
    index_keys: frozenset[str] = frozenset()
    # the device fields the expression reads (memo.references; None: it may read any), and the results by
    # what those fields hold (memo.source_key): a bool, or the runtime error to raise again
    refs: tuple[Ref, ...] | None = None
    results: dict[tuple[Hashable, ...], bool | CelEvalError] = field(default_factory=dict, repr=False)

    def matches_source(
        self, driver: str, source: Mapping[str, Any], invalid: str | None, view: Callable[[], DeviceView]
    ) -> bool:
        """``matches(view())`` for the device whose v1 JSON is ``source`` and whose ``attributes_invalid`` is
        ``invalid``; remembered by ``source_key`` when the expression allows it, so ``view`` is called only
        for the first device with each key (or for every device, when it does not)."""
        if invalid is not None:
            raise CelEvalError(self.expression, invalid)
        key = source_key(self.refs, driver, source) if self.refs is not None else None
        if key is None:
            return self.matches(view())
        known = self.results.get(key)
        if known is None:
            try:
                known = self.matches(view())
            except CelEvalError as e:
                known = e
            if len(self.results) >= _RESULTS_LIMIT:
                self.results.clear()
            self.results[key] = known
        if isinstance(known, CelEvalError):
            raise CelEvalError(known.expression, known.message)
        return known

    def matches(self, device: DeviceView) -> bool:
        if device.invalid is not None:
            raise CelEvalError(self.expression, device.invalid)
        try:
            value = self.program.eval(_activation(device, self.index_keys))
            kind = value.type()
            if kind == cel.Type.BOOL:
                return bool(value.value())
            if kind == cel.Type.ERROR:
                raise CelEvalError(self.expression, runtime_message(str(value.value())))
            name = kind.name().lower()
        except RuntimeError as e:  # cel-cpp reports some evaluation failures as exceptions
            raise CelEvalError(self.expression, runtime_message(str(e))) from e
        raise CelEvalError(self.expression, f"CEL result of type {name} could not be converted to bool")


def _activation(device: DeviceView, index_keys: frozenset[str]) -> Any:
    """The device's activation with an empty map for each indexed domain it lacks (built once per set)."""
    data = device.cel_input
    wanted = index_keys | {device.driver}
    missing = frozenset((wanted - data["attributes"].keys()) | (wanted - data["capacity"].keys()))
    activation = device.activations.get(missing)
    if activation is None:
        padded = dict(data)
        padded["attributes"] = {**{domain: {} for domain in wanted}, **data["attributes"]}
        padded["capacity"] = {**{domain: {} for domain in wanted}, **data["capacity"]}
        activation = device.activations[missing] = _environment().Activation({"device": padded})
    return activation


_cache: dict[str, Selector | CelCompileError] = {}


def compile_selector(expression: str) -> Selector:
    """Compile (or fetch from the cache) a selector; raises CelCompileError like the API server reports it."""
    cached = _cache.get(expression)
    if cached is None:
        cached = _compile(expression)
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[expression] = cached
    if isinstance(cached, CelCompileError):
        raise cached
    return cached


def _compile(expression: str) -> Selector | CelCompileError:
    try:
        program = _environment().compile(expression)
    except RuntimeError as e:
        return CelCompileError(expression, "compilation failed: " + _status_text(str(e)))
    result = program.return_type()
    if not (result == cel.Type.BOOL or result == cel.Type.DYN):
        return CelCompileError(expression, f"must evaluate to bool or the unknown type, not {result.name().lower()}")
    return Selector(expression, program, index_literals(expression), references(expression))
