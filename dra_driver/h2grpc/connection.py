"""One client connection: its frames in, its calls served, its answers out under HTTP/2 flow control.

Threads take turns (leader/followers): one thread at a time reads frames; the thread that completes a
request hands the reading over to a waiting thread and answers that request itself, so no call waits for
a hand-off between threads. A new thread is started only when none is waiting to read. At ``max_calls``
calls in progress the reading thread keeps the turn and queues whole requests for the threads whose calls
end, so control frames (PING, WINDOW_UPDATE, RST_STREAM) are always read.

Writes, the open streams and the send windows are ``sending.Sending``'s, under its one lock.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import hpack

from dra_driver.h2grpc import frames as f
from dra_driver.h2grpc import headers
from dra_driver.h2grpc.call import Call, Method, Request, Stream, decode_request, framed, trailers_only
from dra_driver.h2grpc.sending import MAX_STREAMS, Sending
from dra_driver.h2grpc.status import Abort, Status

log = logging.getLogger(__name__)
PREFACE_TIMEOUT_S = 10  # a client that has not sent its preface by then loses the connection
CONNECTION_WINDOW = 16 * 1024 * 1024  # what the peer may send before this side acknowledges it


class Connection:
    def __init__(
        self,
        sock: socket.socket,
        methods: dict[str, Method],
        max_message_bytes: int,
        max_calls: int,
        on_ended: Callable[[Connection], None] = lambda connection: None,
    ) -> None:
        self.sock = sock
        self._on_ended = on_ended
        self.methods = methods
        self.max_message_bytes = max_message_bytes
        self.max_calls = max_calls
        self.out = Sending(sock, self.close)
        self._reader = f.FrameReader(sock)
        self._prefaced = False
        self._decoder = headers.decoder()
        self._read_turn = threading.Lock()
        self._last_stream = 0
        self._unacknowledged = 0
        self._count = threading.Lock()  # guards the thread counts
        self._waiting = 0  # threads waiting for their turn to read
        self._threads = 0
        self._serving = 0  # calls in progress
        self._pending: deque[Request] = deque()  # whole requests waiting for a call slot
        self.ended = threading.Event()  # every thread of the connection has finished

    @property
    def closed(self) -> bool:
        return self.out.closed

    # -- threads ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Send this side's preface and start the first two threads (one reads, one waits to)."""
        initial_window = min(self.max_message_bytes + 64 * 1024, f.MAX_WINDOW)
        self.out.send(
            f.settings(
                {
                    f.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                    f.INITIAL_WINDOW_SIZE: initial_window,
                    f.MAX_HEADER_LIST_SIZE: headers.MAX_HEADER_LIST_BYTES,
                }
            )
            + f.window_update(0, CONNECTION_WINDOW - f.DEFAULT_WINDOW)
        )
        self._spawn()
        self._spawn()

    def _spawn(self) -> None:
        with self._count:
            if self._threads >= self.max_calls + 2:  # the calls, the reader and one waiting to read
                return
            self._threads += 1
        threading.Thread(target=self._work, name="h2grpc", daemon=True).start()

    def _work(self) -> None:
        try:
            request: Request | None = None
            while not self.closed:
                if request is None:
                    request = self._read_until_servable()
                    if request is None:
                        self.close()
                        return
                self._serve(*request)
                with self._count:  # a request that waited for a free call slot is served next, by this thread
                    request = self._pending.popleft() if self._pending else None
                    if request is None:
                        self._serving -= 1
        finally:
            with self._count:
                self._threads -= 1
                last = self._threads == 0
            if last:
                self._reader.close()
                self.sock.close()
                self.ended.set()
                self._on_ended(self)

    def _read_until_servable(self) -> Request | None:
        """Take the read turn and read until a request is complete and a call slot is free; then hand the turn
        on (starting a thread when none waits for it). At ``max_calls`` calls in progress the reader keeps
        reading (PINGs, WINDOW_UPDATEs and resets must go on being read) and queues whole requests for the
        threads whose calls end. None once the connection is over."""
        with self._count:
            self._waiting += 1
        with self._read_turn:
            with self._count:
                self._waiting -= 1
            while True:
                if self.closed:
                    return None
                request = self._next_request()
                if request is None:
                    return None
                with self._count:
                    if self._serving < self.max_calls:
                        self._serving += 1
                        nobody_reads = self._waiting == 0
                        break
                    self._pending.append(request)
        if nobody_reads:
            self._spawn()
        return request

    def close(self) -> None:
        """End the connection now: every open call is cancelled (its callbacks run), the threads finish."""
        streams = self.out.close()
        if streams is None:
            return
        for stream in streams:
            self.out.cancel(stream)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread

    def go_away(self) -> int:
        """Refuse new calls (GOAWAY); the calls already started go on. Returns how many are in progress."""
        return self.out.go_away(lambda: self._last_stream)

    def in_progress(self) -> int:
        """Open streams: calls being served and requests still arriving (GOAWAY let them in)."""
        return self.out.open_count()

    # -- reading -----------------------------------------------------------------------------------------

    def _next_request(self) -> Request | None:
        """Read frames until a request is complete; None once the connection is over."""
        try:
            if not self._prefaced:
                self.sock.settimeout(PREFACE_TIMEOUT_S)
                sent = self._reader.preface()
                self.sock.settimeout(None)
                if sent != f.PREFACE:
                    if sent:  # (a plain connect that sends nothing is how a socket is probed)
                        log.warning("a client sent no HTTP/2 preface: closing its connection")
                    return None
                self._prefaced = True
            while True:
                got = self._reader.next()
                if got is None:
                    return None
                request = self._on_frame(*got)
                if request is not None:
                    return request
        except f.ConnectionError_ as e:
            log.warning("closing a client connection: %s", e)
            self.out.send(f.goaway(self._last_stream, e.code, str(e)))
            return None
        except (OSError, ValueError):  # the socket was shut down or closed under the reader
            return None

    def _on_frame(self, kind: int, flags: int, sid: int, payload: bytes) -> Request | None:
        if kind == f.DATA:
            return self._on_data(flags, sid, payload)
        if kind == f.HEADERS:
            return self._on_headers(flags, sid, payload)
        if kind == f.SETTINGS:
            if not flags & f.ACK:
                self.out.on_settings(payload)
        elif kind == f.PING:
            if len(payload) != 8:
                raise f.ConnectionError_(f.FRAME_SIZE_ERROR, "a PING frame must carry 8 bytes")
            if not flags & f.ACK:
                self.out.send(f.frame(f.PING, f.ACK, 0, payload))
        elif kind == f.WINDOW_UPDATE:
            self.out.on_window_update(sid, payload)
        elif kind == f.RST_STREAM:
            self.out.reset(sid)
        elif kind == f.GOAWAY:
            self.out.going_away = True  # the client starts no more calls; the connection ends when it closes
        elif kind in (f.CONTINUATION, f.PUSH_PROMISE):
            raise f.ConnectionError_(f.PROTOCOL_ERROR, f"unexpected frame of type {kind}")
        return None  # PRIORITY and unknown types are ignored (RFC 9113 §5.5)

    def _on_headers(self, flags: int, sid: int, payload: bytes) -> Request | None:
        block = f.unpadded(f.HEADERS, flags, payload)
        ended = flags & f.END_STREAM != 0  # (only HEADERS carries it; CONTINUATION frames do not)
        while not flags & f.END_HEADERS:  # CONTINUATION frames follow at once (§6.10)
            got = self._reader.next()
            if got is None:
                raise f.ConnectionError_(f.PROTOCOL_ERROR, "the connection ended inside a header block")
            kind, flags, continued, more = got
            if kind != f.CONTINUATION or continued != sid:
                raise f.ConnectionError_(f.PROTOCOL_ERROR, "a header block was interrupted")
            block += more
            if len(block) > headers.MAX_HEADER_LIST_BYTES:
                raise f.ConnectionError_(f.PROTOCOL_ERROR, "a header block larger than the advertised limit")
        try:
            fields = headers.decode(self._decoder, block)  # always decoded: it updates the dynamic table
        except hpack.HPACKError as e:
            raise f.ConnectionError_(f.COMPRESSION_ERROR, f"an undecodable header block: {e}") from e
        stream = self.out.get(sid)
        if stream is not None:  # trailers: the request ends here
            return self._ended(stream) if ended and not stream.complete else None
        if sid % 2 == 0 or sid <= self._last_stream:
            raise f.ConnectionError_(f.PROTOCOL_ERROR, f"stream {sid} cannot start a request")
        self._last_stream = sid
        return self._open(sid, fields, ended)

    def _open(self, sid: int, fields: dict[bytes, bytes], ended: bool) -> Request | None:
        if self.out.going_away or self.out.open_count() >= MAX_STREAMS:  # (checked again as it opens)
            self.out.send(f.rst_stream(sid, f.REFUSED_STREAM))
            return None
        if fields.get(b":method") != b"POST" or not fields.get(b"content-type", b"").startswith(b"application/grpc"):
            self._answer_at_once(sid, headers.http_error(415), ended)
            return None
        path = fields.get(b":path", b"").decode(errors="replace")
        method = self.methods.get(path)
        if method is None:
            self._answer_at_once(sid, trailers_only(Status.UNIMPLEMENTED, f"unknown method {path}"), ended)
            return None
        if fields.get(b"grpc-encoding", b"identity") != b"identity":
            message = "compressed requests are not accepted (send grpc-encoding identity)"
            self._answer_at_once(sid, trailers_only(Status.UNIMPLEMENTED, message), ended)
            return None
        stream = Stream(sid, method, send_window=self.out.peer_initial_window)
        if not self.out.add(stream, f.rst_stream(sid, f.REFUSED_STREAM)):
            return None
        return self._ended(stream) if ended else None

    def _on_data(self, flags: int, sid: int, payload: bytes) -> Request | None:
        self._acknowledge(len(payload))
        stream = self.out.get(sid)
        if stream is None or stream.complete:
            return None  # a stream answered or reset already: its data is dropped (its window counted)
        stream.body += f.unpadded(f.DATA, flags, payload)
        if len(stream.body) >= 5:
            size = int.from_bytes(stream.body[1:5])
            if size > self.max_message_bytes:
                message = f"a request message of {size} bytes (at most {self.max_message_bytes})"
                self._refuse(stream, Status.RESOURCE_EXHAUSTED, message, flags & f.END_STREAM != 0)
                return None
            if len(stream.body) > 5 + size:
                message = "a unary request carries more than one message"
                self._refuse(stream, Status.INTERNAL, message, flags & f.END_STREAM != 0)
                return None
        return self._ended(stream) if flags & f.END_STREAM else None

    def _ended(self, stream: Stream) -> Request | None:
        stream.complete = True
        assert stream.method is not None
        return stream, stream.method

    def _acknowledge(self, size: int) -> None:
        """Give the connection's receive window back once a quarter of it has been used."""
        self._unacknowledged += size
        if self._unacknowledged >= CONNECTION_WINDOW // 4:
            self.out.send(f.window_update(0, self._unacknowledged))
            self._unacknowledged = 0

    # -- answering ---------------------------------------------------------------------------------------

    def _serve(self, stream: Stream, method: Method) -> None:
        call = Call(self.out, stream)
        try:
            request = decode_request(stream, method)
            if method.streaming:
                self._stream_answers(stream, method.handler(request, call))
            else:
                self._answer(stream, headers.RESPONSE, method.handler(request, call).SerializeToString())
        except Abort as e:
            self._fail(stream, e.status, e.message)
        except Exception as e:
            log.exception("a call to a gRPC handler failed")
            self._fail(stream, Status.UNKNOWN, f"Exception calling application: {e}")
        finally:
            self.out.end(stream)

    def _fail(self, stream: Stream, status: Status, message: str) -> None:
        """End the call with ``status``: in its trailers once a stream has sent answers, else trailers-only."""
        block = headers.trailers(status, message) if stream.answered else trailers_only(status, message)
        self.out.write_frames(stream, [(f.HEADERS, block)])

    def _answer(self, stream: Stream, response_headers: bytes, message: bytes) -> None:
        parts = [(f.HEADERS, response_headers), (f.DATA, framed(message)), (f.HEADERS, headers.OK_TRAILERS)]
        self.out.write_frames(stream, parts)

    def _stream_answers(self, stream: Stream, answers: Iterator[Any]) -> None:
        try:
            for answer in answers:
                if stream.cancelled or self.closed:
                    return
                data = framed(answer.SerializeToString())
                parts = [(f.DATA, data)] if stream.answered else [(f.HEADERS, headers.RESPONSE), (f.DATA, data)]
                self.out.write_frames(stream, parts, end=False)
                stream.answered = True
        finally:
            close = getattr(answers, "close", None)
            if close is not None:
                close()
        ending = headers.OK_TRAILERS if stream.answered else headers.RESPONSE + headers.OK_TRAILERS
        self.out.write_frames(stream, [(f.HEADERS, ending)])

    def _answer_at_once(self, sid: int, block: bytes, ended: bool) -> None:
        """Answer a request the reader refuses before any handler (a trailers-only answer); a client still
        sending is told to stop (RST_STREAM NO_ERROR, RFC 9113 §8.1)."""
        out = f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, sid, block)
        self.out.send(out if ended else out + f.rst_stream(sid, f.NO_ERROR))

    def _refuse(self, stream: Stream, status: Status, message: str, ended: bool) -> None:
        stream.complete = True
        self.out.end(stream)
        self._answer_at_once(stream.id, trailers_only(status, message), ended)
