"""What a call is: its method (request type and handler), its stream's state, the handler's view of it
(``Call``), and the gRPC message framing (a flag byte and a 4-byte length before each message)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dra_driver.h2grpc import frames as f
from dra_driver.h2grpc import headers
from dra_driver.h2grpc.status import Abort, Status

if TYPE_CHECKING:
    from dra_driver.h2grpc.sending import Sending


@dataclass(frozen=True)
class Method:
    """A call's request type (a protobuf message class) and its handler: ``handler(request, call)`` returns
    the answer, or for a streaming method an iterator of answers."""

    request: Any
    handler: Callable[[Any, Call], Any]
    streaming: bool = False


@dataclass
class Stream:
    id: int
    method: Method | None
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False  # the whole request is in (a call serves it, or it was answered at once)
    send_window: int = f.DEFAULT_WINDOW
    cancelled: bool = False
    answered: bool = False  # a streaming call has sent its response headers (and an answer)
    finished: bool = False  # its end callbacks have run
    callbacks: list[Callable[[], None]] = field(default_factory=list)


def trailers_only(status: Status, message: str) -> bytes:
    """The one header block of an answer that carries only a status."""
    return headers.RESPONSE + headers.trailers(status, message)


Request = tuple[Stream, Method]  # a whole request and the method that serves it


class Call:
    """What a handler may ask of its call (the subset of grpcio's context this server needs)."""

    def __init__(self, sending: Sending, stream: Stream) -> None:
        self._sending = sending
        self._stream = stream

    def is_active(self) -> bool:
        return not self._stream.cancelled and not self._sending.closed

    def add_callback(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs once the call has ended: answered, cancelled by the client, or its connection
        gone. At once if it already has."""
        self._sending.on_end(self._stream, callback)

    @staticmethod
    def abort(status: Status, message: str) -> None:
        raise Abort(status, message)


def framed(message: bytes) -> bytes:
    """A serialized message as gRPC sends it: not compressed, its length, the bytes."""
    return b"\0" + len(message).to_bytes(4) + message


def decode_request(stream: Stream, method: Method) -> Any:
    """The one message of a unary request's body, parsed; ``Abort`` when there is not exactly one, it is
    compressed or it does not parse."""
    body = bytes(stream.body)
    if len(body) < 5 or len(body) != 5 + int.from_bytes(body[1:5]):
        raise Abort(Status.INTERNAL, "the request does not carry exactly one whole message")
    if body[0] != 0:
        raise Abort(Status.UNIMPLEMENTED, "compressed messages are not accepted")
    try:
        return method.request.FromString(body[5:])
    except Exception as e:  # protobuf's DecodeError
        raise Abort(Status.INTERNAL, f"the request message does not parse: {e}") from e
