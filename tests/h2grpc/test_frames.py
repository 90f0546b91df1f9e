"""dra_driver.h2grpc at the frame level, with a bare client: what HTTP/2 requires of a server (PING and
SETTINGS acknowledged, flow control honoured, protocol errors end the connection with GOAWAY) and what
gRPC requires (non-gRPC requests, compressed messages, a request over the cap answered before it is read)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from api.gen.pluginregistration.v1 import api_pb2 as pb
from dra_driver.h2grpc import connection
from dra_driver.h2grpc import frames as f
from dra_driver.h2grpc.call import Call, Method, Stream
from dra_driver.h2grpc.sending import Sending
from dra_driver.h2grpc.server import MAX_CONNECTIONS, Server
from dra_driver.h2grpc.status import Abort, Status
from tests.h2grpc.rawclient import RawClient

ECHO = "/t.T/Echo"


def echo(request: Any, call: Call) -> Any:
    return pb.PluginInfo(name=request.error)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    served = Server(tmp_path_factory.mktemp("h2") / "t.sock", {ECHO: Method(pb.RegistrationStatus, echo)}, 1024, 4)
    served.start()
    yield served
    served.stop(grace=0.5)


def _answer(client: RawClient, stream: int) -> tuple[dict[str, str], bytes, dict[str, str]]:
    """(headers, DATA bytes, trailers) of ``stream``'s answer."""
    heads: list[dict[str, str]] = []
    data = b""
    for frame in client.frames_until(f.HEADERS, stream, f.END_STREAM):
        if frame.stream != stream:
            continue
        if frame.kind == f.HEADERS:
            heads.append(client.headers_of(frame))
        elif frame.kind == f.DATA:
            data += frame.payload
    return heads[0], data, heads[-1]


def _works(server: Server) -> None:
    client = RawClient(server.path)
    client.send(client.request_headers(1, ECHO) + client.message(pb.RegistrationStatus(error="ok").SerializeToString()))
    _, data, trailers = _answer(client, 1)
    assert trailers["grpc-status"] == "0" and pb.PluginInfo.FromString(data[5:]).name == "ok"
    client.close()


def test_a_ping_and_settings_are_acknowledged(server: Server) -> None:
    client = RawClient(server.path)
    client.send(f.frame(f.PING, 0, 0, b"12345678"))
    pong = client.frames_until(f.PING)[-1]
    assert pong.flags & f.ACK and pong.payload == b"12345678"
    client.close()


def test_the_server_advertises_its_limits(server: Server) -> None:
    client = RawClient(server.path)
    first = client.frames_until(f.SETTINGS)[0]
    assert first.kind == f.SETTINGS and not first.flags & f.ACK
    advertised = dict(f.parse_settings(first.payload))
    assert advertised[f.MAX_CONCURRENT_STREAMS] == 100
    assert advertised[f.INITIAL_WINDOW_SIZE] >= 1024 + 5  # a whole request fits a stream's window
    assert client.frames_until(f.SETTINGS, flags=f.ACK)[-1].flags & f.ACK  # our settings acknowledged
    client.close()


def test_an_answer_waits_for_the_clients_window(server: Server) -> None:
    client = RawClient(server.path, settings={f.INITIAL_WINDOW_SIZE: 4})
    text = "w" * 40
    client.send(client.request_headers(1, ECHO) + client.message(pb.RegistrationStatus(error=text).SerializeToString()))
    data = b""
    while True:
        frame = client.read_frame()
        assert frame is not None
        if frame.stream == 1 and frame.kind == f.DATA:
            assert len(frame.payload) <= 4, "no DATA frame larger than the stream's window"
            data += frame.payload
            client.send(f.window_update(1, len(frame.payload)))
        if frame.kind == f.HEADERS and frame.flags & f.END_STREAM:
            break
    assert pb.PluginInfo.FromString(data[5:]).name == text
    client.close()


def test_a_request_that_is_not_grpc_gets_415(server: Server) -> None:
    client = RawClient(server.path)
    block = client.encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", ECHO), (":authority", "x")])
    client.send(f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 1, block))
    (head,) = [fr for fr in client.frames_until(f.HEADERS, 1) if fr.kind == f.HEADERS]
    assert client.headers_of(head)[":status"] == "415"
    client.close()


def test_a_compressed_message_is_refused(server: Server) -> None:
    client = RawClient(server.path)
    client.send(client.request_headers(1, ECHO) + client.message(b"\x1f\x8b", compressed=True))
    _, _, trailers = _answer(client, 1)
    assert trailers["grpc-status"] == "12" and "compressed" in trailers["grpc-message"]
    client.close()


def test_a_message_over_the_cap_is_refused_from_its_length_alone(server: Server) -> None:
    client = RawClient(server.path)
    prefix = b"\x00" + struct.pack(">I", 10_000_000)  # announces 10 MB, sends none of it
    client.send(client.request_headers(1, ECHO) + f.frame(f.DATA, 0, 1, prefix))
    frames = client.frames_until(f.RST_STREAM, 1)
    (trailers,) = [client.headers_of(fr) for fr in frames if fr.kind == f.HEADERS and fr.stream == 1]
    assert trailers["grpc-status"] == "8" and "10000000 bytes (at most 1024)" in trailers["grpc-message"]
    client.close()


def test_a_request_for_an_even_stream_ends_the_connection(server: Server) -> None:
    client = RawClient(server.path)
    client.send(client.request_headers(2, ECHO))
    away = client.frames_until(f.GOAWAY)[-1]
    assert struct.unpack(">II", away.payload[:8])[1] == f.PROTOCOL_ERROR
    assert client.read_frame() is None
    client.close()
    _works(server)


def test_a_frame_over_the_size_limit_ends_the_connection(server: Server) -> None:
    client = RawClient(server.path)
    client.send(f.frame(f.DATA, 0, 1, b"x" * (f.DEFAULT_MAX_FRAME + 1)))
    away = client.frames_until(f.GOAWAY)[-1]
    assert struct.unpack(">II", away.payload[:8])[1] == f.FRAME_SIZE_ERROR
    client.close()
    _works(server)


def test_a_client_without_the_preface_is_dropped(server: Server) -> None:
    client = RawClient(server.path, preface=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    while (frame := client.read_frame()) is not None:
        assert frame.kind in (f.SETTINGS, f.WINDOW_UPDATE)  # the server's own preface, then the close
    client.close()
    _works(server)


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 255), st.integers(0, 9), st.binary(max_size=64))))
def test_any_frames_leave_the_server_serving(server: Server, junk: list[tuple[int, int, int, bytes]]) -> None:
    client = RawClient(server.path)
    client.send(b"".join(f.frame(kind, flags, stream, payload) for kind, flags, stream, payload in junk))
    client.sock.shutdown(2)  # (SHUT_RDWR) the server sees the end at once
    client.close()
    _works(server)


def test_a_request_whose_headers_continue_still_ends_where_headers_said(server: Server) -> None:
    client = RawClient(server.path)
    block = client.request_headers(1, ECHO)[9:]  # END_STREAM on HEADERS, END_HEADERS on the CONTINUATION
    client.send(f.frame(f.HEADERS, f.END_STREAM, 1, block[:10]) + f.frame(f.CONTINUATION, f.END_HEADERS, 1, block[10:]))
    _, _, trailers = _answer(client, 1)
    assert trailers["grpc-status"] == "13" and "exactly one whole message" in trailers["grpc-message"]
    client.close()


def test_control_frames_are_read_while_every_call_waits_for_window(tmp_path: Path) -> None:
    """More calls than call slots, all stuck on a 10-byte stream window: the connection still reads the
    WINDOW_UPDATEs and PINGs that free them."""
    small = Server(tmp_path / "s.sock", {ECHO: Method(pb.RegistrationStatus, echo)}, 4096, max_calls=2)
    small.start()
    try:
        client = RawClient(small.path, settings={f.INITIAL_WINDOW_SIZE: 10})
        body = pb.RegistrationStatus(error="x" * 100).SerializeToString()
        for sid in (1, 3, 5):
            client.send(client.request_headers(sid, ECHO) + client.message(body, stream=sid))
        client.send(b"".join(f.window_update(sid, 10_000) for sid in (1, 3, 5)) + f.frame(f.PING, 0, 0, b"pingpong"))
        ended: set[int] = set()
        pinged = False
        while len(ended) < 3 or not pinged:
            frame = client.read_frame()
            assert frame is not None
            pinged = pinged or (frame.kind == f.PING and frame.payload == b"pingpong")
            if frame.kind == f.HEADERS and frame.flags & f.END_STREAM:
                ended.add(frame.stream)
        assert ended == {1, 3, 5}
        client.close()
    finally:
        small.stop(grace=0.5)


def test_a_stream_failing_after_an_answer_sends_trailers_without_pseudo_headers(tmp_path: Path) -> None:
    def failing(request: Any, call: Call) -> Iterator[Any]:
        yield pb.PluginInfo(name="one")
        raise Abort(Status.FAILED_PRECONDITION, "gone bad")

    served = Server(tmp_path / "s.sock", {ECHO: Method(pb.RegistrationStatus, failing, streaming=True)}, 4096, 2)
    served.start()
    try:
        client = RawClient(served.path)
        client.send(client.request_headers(1, ECHO) + client.message(b""))
        head, data, trailers = _answer(client, 1)
        assert head[":status"] == "200" and pb.PluginInfo.FromString(data[5:]).name == "one"
        assert trailers == {"grpc-status": "9", "grpc-message": "gone bad"}
        client.close()
    finally:
        served.stop(grace=0.5)


def test_a_client_that_sends_no_preface_is_dropped_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "PREFACE_TIMEOUT_S", 0.2)
    served = Server(tmp_path / "s.sock", {ECHO: Method(pb.RegistrationStatus, echo)}, 4096, 2)
    served.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
            silent.settimeout(10)
            silent.connect(str(served.path))
            first = silent.recv(4096)
            assert first[3] == f.SETTINGS  # the server's preface
            while silent.recv(4096):  # then the end of the connection, long before this socket's 10 s timeout
                pass
    finally:
        served.stop(grace=0.5)


def test_idle_connections_make_room_for_a_new_client(server: Server) -> None:
    idle = []
    for _ in range(MAX_CONNECTIONS):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(server.path))
        idle.append(sock)
    try:
        _works(server)
    finally:
        for sock in idle:
            sock.close()


def test_goaway_reads_the_last_stream_under_the_lock_streams_open_under() -> None:
    """Else a stream opened between the read and the GOAWAY would be served past the id the GOAWAY names."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        out = Sending(ours, lambda: None)
        held: list[bool] = []

        def last_stream() -> int:
            held.append(out.lock._is_owned())  # type: ignore[attr-defined]
            return 7

        assert out.go_away(last_stream) == 0
        assert held == [True] and out.going_away
        kind, _, _, payload = f.FrameReader(theirs).next() or (None, 0, 0, b"")
        assert kind == f.GOAWAY and int.from_bytes(payload[:4]) == 7
        assert not out.add(Stream(9, None), f.rst_stream(9, f.REFUSED_STREAM))  # nothing opens after it
