"""A connection's send side: the socket's writes, the open streams and the send windows, under one lock.

A call whose answer does not fit the peer's windows waits for its WINDOW_UPDATE, for a SETTINGS frame that
widens them, for its stream's cancellation or for the connection to close. Ending a stream (answered or
cancelled) runs its end callbacks once, outside the lock.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable

from dra_driver.h2grpc import frames as f
from dra_driver.h2grpc.call import Stream

log = logging.getLogger(__name__)
SEND_TIMEOUT_S = 10  # a peer that does not read its answers for this long loses the connection
MAX_STREAMS = 100  # concurrent streams per connection (advertised)


class Sending:
    def __init__(self, sock: socket.socket, on_write_failed: Callable[[], None]) -> None:
        self.sock = sock
        self._on_write_failed = on_write_failed  # called on a thread of its own: closes the connection
        self.lock = threading.Condition()  # guards the socket's writes, the streams and the send windows
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self.going_away = False
        self._send_window = f.DEFAULT_WINDOW
        self.peer_initial_window = f.DEFAULT_WINDOW
        self._peer_max_frame = f.DEFAULT_MAX_FRAME
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", SEND_TIMEOUT_S, 0))

    def send(self, data: bytes) -> None:
        with self.lock:
            self.send_locked(data)

    def send_locked(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.sock.sendall(data)
        except OSError as e:
            log.warning("a client connection failed on write (%s): closing it", e)
            threading.Thread(target=self._on_write_failed, daemon=True).start()  # not under the lock

    def close(self) -> list[Stream] | None:
        """Mark the connection closed (writers waiting for window give up); the streams that were open, None
        when it was closed already."""
        with self.lock:
            if self.closed:
                return None
            self.closed = True
            streams, self.streams = list(self.streams.values()), {}
            self.lock.notify_all()
        return streams

    def go_away(self, last_stream: Callable[[], int]) -> int:
        """Send GOAWAY: no stream after ``last_stream()`` is served (read under the lock, which a stream takes to
        open: none opens between the read and the refusal). How many streams are open."""
        with self.lock:
            self.going_away = True
            self.send_locked(f.goaway(last_stream(), f.NO_ERROR))
            return len(self.streams)

    def open_count(self) -> int:
        with self.lock:
            return len(self.streams)

    def get(self, sid: int) -> Stream | None:
        with self.lock:
            return self.streams.get(sid)

    def add(self, stream: Stream, refusal: bytes) -> bool:
        """Open ``stream``; False (and ``refusal`` sent) while going away or at MAX_STREAMS."""
        with self.lock:
            if self.going_away or len(self.streams) >= MAX_STREAMS:
                self.send_locked(refusal)
                return False
            self.streams[stream.id] = stream
            return True

    # -- the peer's settings and windows -----------------------------------------------------------------

    def on_settings(self, payload: bytes) -> None:
        """Apply the peer's SETTINGS (the windows and frame size this side sends with) and acknowledge them."""
        with self.lock:
            for key, value in f.parse_settings(payload):
                if key == f.INITIAL_WINDOW_SIZE:
                    if value > f.MAX_WINDOW:
                        raise f.ConnectionError_(f.FLOW_CONTROL_ERROR, f"initial window {value} too large")
                    for stream in self.streams.values():
                        stream.send_window += value - self.peer_initial_window
                    self.peer_initial_window = value
                elif key == f.MAX_FRAME_SIZE:
                    if not f.DEFAULT_MAX_FRAME <= value <= f.LARGEST_FRAME:
                        raise f.ConnectionError_(f.PROTOCOL_ERROR, f"max frame size {value} out of range")
                    self._peer_max_frame = value
            self.send_locked(f.frame(f.SETTINGS, f.ACK, 0))
            self.lock.notify_all()

    def on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise f.ConnectionError_(f.FRAME_SIZE_ERROR, "a WINDOW_UPDATE frame must carry 4 bytes")
        increment = int.from_bytes(payload) & f.MAX_WINDOW
        if increment == 0:
            raise f.ConnectionError_(f.PROTOCOL_ERROR, "a window update of 0")
        with self.lock:
            if sid == 0:
                self._send_window += increment
                if self._send_window > f.MAX_WINDOW:
                    raise f.ConnectionError_(f.FLOW_CONTROL_ERROR, "the connection's window overflowed")
            elif (stream := self.streams.get(sid)) is not None:
                stream.send_window += increment
            self.lock.notify_all()

    # -- answers -----------------------------------------------------------------------------------------

    def write_frames(self, stream: Stream, parts: list[tuple[int, bytes]], end: bool = True) -> None:
        """Write the HEADERS and DATA ``parts`` of ``stream``'s answer (END_STREAM on the last when ``end``),
        DATA within the peer's windows; nothing once the stream or the connection is gone."""
        out: list[bytes] = []
        with self.lock:
            for i, (kind, payload) in enumerate(parts):
                flags = f.END_STREAM if end and i == len(parts) - 1 else 0
                if kind == f.HEADERS:
                    out.append(f.frame(f.HEADERS, flags | f.END_HEADERS, stream.id, payload))
                    continue
                view = memoryview(payload)
                while True:
                    if self.closed or stream.cancelled:
                        return
                    size = min(len(view), self._send_window, stream.send_window, self._peer_max_frame)
                    if size <= 0 and len(view):
                        if out:
                            self.send_locked(b"".join(out))
                            out.clear()
                        self.lock.wait()
                        continue
                    self._send_window -= size
                    stream.send_window -= size
                    last = size == len(view)
                    out.append(f.frame(f.DATA, flags if last else 0, stream.id, bytes(view[:size])))
                    view = view[size:]
                    if last:
                        break
            if not stream.cancelled:
                self.send_locked(b"".join(out))

    # -- ends of streams ---------------------------------------------------------------------------------

    def on_end(self, stream: Stream, callback: Callable[[], None]) -> None:
        with self.lock:
            if not stream.finished:
                stream.callbacks.append(callback)
                return
        callback()

    def end(self, stream: Stream) -> None:
        """The stream was answered (or refused): it closes, its callbacks run."""
        with self.lock:
            self.streams.pop(stream.id, None)
        self.finish(stream)

    def reset(self, sid: int) -> None:
        """The peer reset stream ``sid`` (RST_STREAM): no writer takes window for it from here on."""
        with self.lock:
            stream = self.streams.pop(sid, None)
            if stream is not None:
                stream.cancelled = True
        if stream is not None:
            self.cancel(stream)

    def cancel(self, stream: Stream) -> None:
        with self.lock:
            stream.cancelled = True
            self.lock.notify_all()  # a writer waiting for window gives up
        self.finish(stream)

    def finish(self, stream: Stream) -> None:
        """Run the stream's end callbacks, once."""
        with self.lock:
            if stream.finished:
                return
            stream.finished = True
            callbacks, stream.callbacks = stream.callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a call's end callback failed")
