"""dra_driver.h2grpc served to grpcio's client (the same C core as many gRPC clients): answers, statuses,
concurrent calls, streams larger than the flow-control windows, cancellation and a graceful stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from api.gen.pluginregistration.v1 import api_pb2 as pb
from dra_driver.h2grpc.call import Call, Method
from dra_driver.h2grpc.server import Server
from dra_driver.h2grpc.status import Abort, Status

ECHO, FAIL, CRASH, BLOCK, STREAM = "/t.T/Echo", "/t.T/Fail", "/t.T/Crash", "/t.T/Block", "/t.T/Stream"


class Service:
    def __init__(self) -> None:
        self.gate = threading.Barrier(8, timeout=10)
        self.release = threading.Event()
        self.started = threading.Event()
        self.ended = threading.Event()

    def methods(self) -> dict[str, Method]:
        return {
            ECHO: Method(pb.RegistrationStatus, self.echo),
            FAIL: Method(pb.RegistrationStatus, self.fail),
            CRASH: Method(pb.RegistrationStatus, self.crash),
            BLOCK: Method(pb.RegistrationStatus, self.block),
            STREAM: Method(pb.RegistrationStatus, self.stream, streaming=True),
        }

    @staticmethod
    def echo(request: Any, call: Call) -> Any:
        return pb.PluginInfo(name=request.error)

    @staticmethod
    def fail(request: Any, call: Call) -> Any:
        raise Abort(Status.FAILED_PRECONDITION, request.error)

    @staticmethod
    def crash(request: Any, call: Call) -> Any:
        raise RuntimeError("the handler broke")

    def block(self, request: Any, call: Call) -> Any:
        if request.plugin_registered:
            self.gate.wait()  # all 8 calls are in their handlers at once
        else:
            self.started.set()
            self.release.wait(10)
        return pb.PluginInfo(name=request.error)

    def stream(self, request: Any, call: Call) -> Iterator[Any]:
        call.add_callback(self.ended.set)
        count = int(request.error)
        for i in range(count):
            yield pb.PluginInfo(name=str(i), endpoint="x" * 20_000)
        if count == 0:  # an endless stream: ends when the client cancels
            while call.is_active():
                self.ended.wait(0.05)
                yield pb.PluginInfo(name="tick")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Service, Server, grpc.Channel]]:
    service = Service()
    server = Server(tmp_path / "t.sock", service.methods(), max_message_bytes=1024, max_calls=16)
    server.start()
    channel = grpc.insecure_channel(f"unix://{server.path}")
    try:
        yield service, server, channel
    finally:
        channel.close()
        server.stop(grace=0.5)


def _unary(channel: grpc.Channel, path: str) -> Any:
    return channel.unary_unary(path, pb.RegistrationStatus.SerializeToString, pb.PluginInfo.FromString)


def test_an_answer_comes_back(served: tuple[Service, Server, grpc.Channel]) -> None:
    _, _, channel = served
    for text in ("hello", "", "é" * 300):
        assert _unary(channel, ECHO)(pb.RegistrationStatus(error=text), timeout=10).name == text


def test_an_abort_carries_its_status_and_message(served: tuple[Service, Server, grpc.Channel]) -> None:
    _, _, channel = served
    message = "100% wrong: the field 'x' must be one of a, b — not ü"
    with pytest.raises(grpc.RpcError) as e:
        _unary(channel, FAIL)(pb.RegistrationStatus(error=message), timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.details() == message


def test_a_failing_handler_is_unknown_and_the_server_goes_on(served: tuple[Service, Server, grpc.Channel]) -> None:
    _, _, channel = served
    with pytest.raises(grpc.RpcError) as e:
        _unary(channel, CRASH)(pb.RegistrationStatus(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNKNOWN and "the handler broke" in str(e.value.details())
    assert _unary(channel, ECHO)(pb.RegistrationStatus(error="still here"), timeout=10).name == "still here"


def test_an_unknown_method_is_unimplemented(served: tuple[Service, Server, grpc.Channel]) -> None:
    _, _, channel = served
    with pytest.raises(grpc.RpcError) as e:
        _unary(channel, "/t.T/Nope")(pb.RegistrationStatus(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "/t.T/Nope" in str(e.value.details())


def test_a_request_over_the_cap_is_resource_exhausted(served: tuple[Service, Server, grpc.Channel]) -> None:
    _, _, channel = served
    with pytest.raises(grpc.RpcError) as e:
        _unary(channel, ECHO)(pb.RegistrationStatus(error="x" * 5000), timeout=10)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 1024" in str(e.value.details())
    assert _unary(channel, ECHO)(pb.RegistrationStatus(error="ok"), timeout=10).name == "ok"


def test_calls_on_one_connection_run_at_once(served: tuple[Service, Server, grpc.Channel]) -> None:
    _, _, channel = served
    call = _unary(channel, BLOCK)
    with_all = [call.future(pb.RegistrationStatus(plugin_registered=True, error=str(i)), timeout=20) for i in range(8)]
    assert sorted(int(f.result().name) for f in with_all) == list(range(8))  # the barrier of 8 was passed


def test_a_stream_larger_than_every_window_arrives_whole_and_in_order(
    served: tuple[Service, Server, grpc.Channel],
) -> None:
    service, _, channel = served
    stream = channel.unary_stream(STREAM, pb.RegistrationStatus.SerializeToString, pb.PluginInfo.FromString)
    answers = list(stream(pb.RegistrationStatus(error="60"), timeout=30))  # 60 x 20 kB: 1.2 MB
    assert [a.name for a in answers] == [str(i) for i in range(60)]
    assert all(len(a.endpoint) == 20_000 for a in answers)
    assert service.ended.wait(5)


def test_a_cancelled_stream_ends_its_handler(served: tuple[Service, Server, grpc.Channel]) -> None:
    service, _, channel = served
    stream = channel.unary_stream(STREAM, pb.RegistrationStatus.SerializeToString, pb.PluginInfo.FromString)
    answers = stream(pb.RegistrationStatus(error="0"), timeout=30)
    assert next(answers).name == "tick"
    answers.cancel()
    assert service.ended.wait(5), "the call's end callback ran once the client cancelled"


def test_stop_lets_a_call_in_progress_finish_and_refuses_new_ones(
    served: tuple[Service, Server, grpc.Channel],
) -> None:
    service, server, channel = served
    pending = _unary(channel, BLOCK).future(pb.RegistrationStatus(error="late"), timeout=20)
    assert service.started.wait(10)
    stopper = threading.Thread(target=server.stop, args=(10,))
    stopper.start()
    service.release.set()
    assert pending.result().name == "late"
    stopper.join(10)
    assert not stopper.is_alive()
    with pytest.raises(grpc.RpcError) as e:
        _unary(channel, ECHO)(pb.RegistrationStatus(), timeout=2)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
