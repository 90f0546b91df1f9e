"""HTTP/2 frames (RFC 9113 §4 and §6): the frame header, the types, flags, settings and error codes a
server uses, and a reader of frames from a socket. Pure apart from the reader's socket."""

from __future__ import annotations

import socket
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS identifiers (RFC 9113 §6.5.2)
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = (
    range(1, 7)
)

# error codes (RFC 9113 §7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x6, 0x7, 0x8, 0x9

DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384  # what this server accepts (it never advertises more)
LARGEST_FRAME = 2**24 - 1
MAX_WINDOW = 2**31 - 1
_HEADER = struct.Struct(">BHBBI")  # length as 1 + 2 bytes, type, flags, stream id
_PAIR = struct.Struct(">HI")


class ConnectionError_(Exception):
    """The peer broke the protocol: the connection ends with GOAWAY carrying ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return _HEADER.pack(n >> 16, n & 0xFFFF, kind, flags, stream) + payload


def settings(pairs: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_PAIR.pack(key, value) for key, value in pairs.items()))


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    if len(payload) % 6:
        raise ConnectionError_(FRAME_SIZE_ERROR, f"SETTINGS payload of {len(payload)} bytes is not a multiple of 6")
    return [_PAIR.unpack_from(payload, i) for i in range(0, len(payload), 6)]


def window_update(stream: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))


def rst_stream(stream: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def goaway(last_stream: int, code: int, debug: str = "") -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream, code) + debug.encode()[:256])


def unpadded(kind: int, flags: int, payload: bytes) -> bytes:
    """A DATA or HEADERS payload without its padding (and a HEADERS frame's priority fields)."""
    start, end = 0, len(payload)
    if flags & PADDED:
        if not payload or payload[0] >= len(payload):
            raise ConnectionError_(PROTOCOL_ERROR, "padding longer than the frame")
        start, end = 1, len(payload) - payload[0]
    if kind == HEADERS and flags & PRIORITY_FLAG:
        start += 5
        if start > end:
            raise ConnectionError_(FRAME_SIZE_ERROR, "HEADERS frame shorter than its priority fields")
    return payload[start:end]


class FrameReader:
    """Frames from a connected socket, through one buffered reader."""

    def __init__(self, sock: socket.socket) -> None:
        self._file = sock.makefile("rb", buffering=65_536)

    def preface(self) -> bytes:
        """What the client sent where its preface belongs (PREFACE, when it speaks HTTP/2)."""
        return bytes(self._file.read(len(PREFACE)))

    def next(self) -> tuple[int, int, int, bytes] | None:
        """(type, flags, stream id, payload) of the next frame; None once the peer has closed the connection."""
        header = self._file.read(9)
        if len(header) < 9:
            return None
        high, low, kind, flags, stream = _HEADER.unpack(header)
        length = high << 16 | low
        if length > DEFAULT_MAX_FRAME:
            raise ConnectionError_(FRAME_SIZE_ERROR, f"a frame of {length} bytes (at most {DEFAULT_MAX_FRAME})")
        payload = self._file.read(length) if length else b""
        if len(payload) < length:
            return None
        return kind, flags, stream & MAX_WINDOW, payload

    def close(self) -> None:
        self._file.close()
