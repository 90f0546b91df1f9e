"""A bare HTTP/2 client for tests: sends exactly the frames a test writes and reads back what the server sends."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import hpack

from dra_driver.h2grpc import frames as f


@dataclass
class Frame:
    kind: int
    flags: int
    stream: int
    payload: bytes


class RawClient:
    def __init__(self, path: Path, settings: dict[int, int] | None = None, preface: bytes = f.PREFACE) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self._buffer = b""
        self.sock.sendall(preface + (f.settings(settings or {}) if preface == f.PREFACE else b""))

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request_headers(self, stream: int, path: str, extra: list[tuple[str, str]] | None = None) -> bytes:
        fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *(extra or []),
        ]
        return f.frame(f.HEADERS, f.END_HEADERS, stream, self.encoder.encode(fields))

    @staticmethod
    def message(data: bytes, compressed: bool = False, stream: int = 1, end: bool = True) -> bytes:
        body = bytes((int(compressed),)) + struct.pack(">I", len(data)) + data
        return f.frame(f.DATA, f.END_STREAM if end else 0, stream, body)

    def read_frame(self) -> Frame | None:
        """The next frame, or None once the server has closed the connection."""
        while len(self._buffer) < 9 or len(self._buffer) < 9 + int.from_bytes(self._buffer[:3]):
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self._buffer += chunk
        length = int.from_bytes(self._buffer[:3])
        header, self._buffer = self._buffer[:9], self._buffer[9:]
        payload, self._buffer = self._buffer[:length], self._buffer[length:]
        return Frame(header[3], header[4], int.from_bytes(header[5:9]) & f.MAX_WINDOW, payload)

    def frames_until(self, kind: int, stream: int | None = None, flags: int = 0) -> list[Frame]:
        """Frames up to and including the first of ``kind`` (on ``stream``, with ``flags`` set)."""
        seen = []
        while (frame := self.read_frame()) is not None:
            seen.append(frame)
            if frame.kind == kind and (stream is None or frame.stream == stream) and frame.flags & flags == flags:
                return seen
        raise AssertionError(f"the connection closed before a frame of type {kind}; got {seen}")

    def headers_of(self, frame: Frame) -> dict[str, str]:
        return {
            k.decode(): v.decode()
            for k, v in self.decoder.decode(f.unpadded(frame.kind, frame.flags, frame.payload), raw=True)
        }
