"""http11.Connection: framing of answers (length, chunked, to the end), keep-alive, and refusals of what it
cannot frame, against a socket server that sends scripted bytes (in small pieces, to cross read boundaries)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from dra_driver.http11 import MAX_HEAD_BYTES, BadResponse, Connection

Start = Callable[..., tuple[int, list[bytes]]]  # (answers, close_after=False) -> (port, requests seen)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            while len(rest) < length:
                rest += conn.recv(4096)
    return data


def _send_in_pieces(conn: socket.socket, data: bytes, piece: int = 7) -> None:
    for i in range(0, len(data), piece):
        conn.sendall(data[i : i + piece])


@pytest.fixture
def server() -> Iterator[Start]:
    """``start(answers, close_after)``: a server answering successive requests of one connection with
    ``answers``; returns its port and the requests it received."""
    listener = socket.create_server(("127.0.0.1", 0))
    threads = []

    def start(answers: list[bytes], close_after: bool = False) -> tuple[int, list[bytes]]:
        seen: list[bytes] = []

        def serve() -> None:
            conn, _ = listener.accept()
            # the client may go away first (it stops reading an answer it refuses): not the server's failure
            with conn, contextlib.suppress(OSError):
                for answer in answers:
                    seen.append(_read_request(conn))
                    _send_in_pieces(conn, answer)
                if close_after:
                    conn.shutdown(socket.SHUT_WR)
                else:
                    conn.recv(1)  # until the client closes

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return listener.getsockname()[1], seen

    yield start
    for thread in threads:
        thread.join(5)  # a server thread's end belongs to the test that started it
    listener.close()


def _connect(port: int) -> Connection:
    return Connection.open("127.0.0.1", port, 5.0, None)


def test_length_and_chunked_answers_on_one_kept_alive_connection(server: Start) -> None:
    port, seen = server(
        [
            b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": "bc"}',
            b'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{"a"\r\n6\r\n: "bc"\r\n1\r\n}\r\n0\r\n'
            b"X-Trailer: t\r\n\r\n",
        ]
    )
    conn = _connect(port)
    first = conn.exchange("GET", "/x?y=1", {"Accept": "application/json"}, None, 5.0)
    second = conn.exchange("POST", "/x", {"Content-Type": "application/json"}, b'{"k":1}', 5.0)
    conn.close()
    assert (first.status, first.body, first.will_close) == (200, b'{"a": "bc"}', False)
    assert (second.status, second.body, second.will_close) == (201, b'{"a": "bc"}', False)
    assert seen[0].startswith(b"GET /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nAccept: application/json\r\n" in seen[0]
    assert seen[1].startswith(b"POST /x HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 7\r\n\r\n" in seen[1] and seen[1].endswith(b'{"k":1}')


def test_informational_answers_are_skipped_and_no_body_statuses_have_none(server: Start) -> None:
    port, _ = server(
        [
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ]
    )
    conn = _connect(port)
    assert conn.exchange("GET", "/", {}, None, 5.0).body == b"{}"
    assert conn.exchange("DELETE", "/", {}, None, 5.0).body == b""
    conn.close()


def test_connection_close_and_an_answer_read_to_the_end(server: Start) -> None:
    port, _ = server([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"], close_after=True)
    conn = _connect(port)
    answer = conn.exchange("GET", "/", {}, None, 5.0)
    conn.close()
    assert (answer.body, answer.will_close) == (b"all of it", True)
    port, _ = server([b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"], close_after=True)
    conn = _connect(port)
    assert conn.exchange("GET", "/", {}, None, 5.0).will_close
    conn.close()


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not a header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", "Content-Length is not a number"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "does not end with CRLF"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed the connection before"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES, "longer than"),
    ],
)
def test_what_it_cannot_frame_is_a_bad_response(server: Start, answer: bytes, says: str) -> None:
    port, _ = server([answer], close_after=True)
    conn = _connect(port)
    with pytest.raises(BadResponse, match=says):
        conn.exchange("GET", "/", {}, None, 5.0)
    conn.close()


def test_a_closed_connection_refuses_to_send() -> None:
    a, b = socket.socketpair()
    conn = Connection(a, "127.0.0.1", 1)
    conn.close()
    b.close()
    with pytest.raises(BadResponse, match="closed"):
        conn.exchange("GET", "/", {}, None, 1.0)


def test_an_answer_trickled_byte_by_byte_times_out_at_the_exchanges_timeout() -> None:
    """The timeout bounds the whole answer, not each read: the plugin's prepare relies on it."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):  # the client closes once it has timed out
            _read_request(conn)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
                if stop.wait(0.05):
                    return
                conn.sendall(bytes([byte]))

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    conn = _connect(listener.getsockname()[1])
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        conn.exchange("GET", "/", {}, None, 0.5)
    took = time.monotonic() - started
    stop.set()
    conn.close()
    thread.join(5)
    listener.close()
    assert 0.5 <= took < 1.5  # each byte came within 0.05 s: a per-read timeout would have waited ~7 s
