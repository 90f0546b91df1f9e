"""CEL object types ``kubernetes.Quantity`` and ``kubernetes.Semver``, carried as protobuf messages.

cel-expr-python cannot declare opaque Python types, but it can pass protobuf messages through CEL. Each
value travels as a one-field message holding a *canonical* string, so that CEL's built-in message equality
is value equality: a quantity holds its value in nano-units (``quantity("1Gi") == quantity("1024Mi")``),
a version holds itself without build metadata (``semver("1.0.0+a") == semver("1.0.0")``, as
``semver.Version.EQ``). The type names match Kubernetes', so ``type(q)`` reads ``kubernetes.Quantity``.
The messages live in a private descriptor pool, built once at import. Pure (no I/O).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]

from dra_driver.cel.quantity import Quantity
from dra_driver.cel.semver import Semver, parse_semver

QUANTITY_TYPE = "kubernetes.Quantity"
SEMVER_TYPE = "kubernetes.Semver"
_FIELD = "canonical"


def _build_pool() -> descriptor_pool.DescriptorPool:
    proto = descriptor_pb2.FileDescriptorProto(name="dra_driver/cel/kubernetes_types.proto", package="kubernetes")
    proto.syntax = "proto3"
    for name in ("Quantity", "Semver"):
        message = proto.message_type.add(name=name)
        message.field.add(
            name=_FIELD,
            number=1,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool


POOL = _build_pool()
QuantityMessage: Any = message_factory.GetMessageClass(POOL.FindMessageTypeByName(QUANTITY_TYPE))
SemverMessage: Any = message_factory.GetMessageClass(POOL.FindMessageTypeByName(SEMVER_TYPE))


def quantity_message(q: Quantity) -> Any:
    return QuantityMessage(canonical=str(q.nanos))


def semver_message(v: Semver) -> Any:
    return SemverMessage(canonical=v.core())


def type_name(message: Any) -> str:
    """``kubernetes.Quantity`` / ``kubernetes.Semver`` for our messages, the Python type name otherwise."""
    descriptor = getattr(message, "DESCRIPTOR", None)
    return str(descriptor.full_name) if descriptor is not None else type(message).__name__


def quantity_of(message: Any) -> Quantity:
    if type_name(message) != QUANTITY_TYPE:
        raise TypeError(f"no such overload: expected {QUANTITY_TYPE}, got {type_name(message)}")
    return Quantity(int(message.canonical))


def semver_of(message: Any) -> Semver:
    if type_name(message) != SEMVER_TYPE:
        raise TypeError(f"no such overload: expected {SEMVER_TYPE}, got {type_name(message)}")
    return _parse_core(str(message.canonical))


@lru_cache(maxsize=4096)
def _parse_core(text: str) -> Semver:
    return parse_semver(text)


def to_cel(value: object) -> Any:
    """A device attribute or capacity value as CEL input: scalars as they are, objects as messages."""
    if isinstance(value, Quantity):
        return quantity_message(value)
    if isinstance(value, Semver):
        return semver_message(value)
    if isinstance(value, tuple):
        return [to_cel(v) for v in value]
    return value
