"""gRPC status codes, the exception a handler raises to end its call with one, and the header encoding
of a status message (the gRPC over HTTP/2 protocol: ``grpc-message`` is percent-encoded UTF-8)."""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class Abort(Exception):
    """Ends the call with ``status`` and ``message`` instead of an answer."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message


MESSAGE_MAX_BYTES = 4096  # a longer status message is cut, so the trailers fit one frame


def encode_message(message: str) -> bytes:
    """``message`` as a ``grpc-message`` value: bytes outside printable ASCII, and '%', as %XX."""
    raw = message.encode()[:MESSAGE_MAX_BYTES].decode(errors="ignore").encode()  # cut on a character
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in raw)
