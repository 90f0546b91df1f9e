"""The gRPC edge refuses what the kubelet can never send, over a real unix socket, before the handler sees it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from api.gen.dra.v1 import api_pb2_grpc as dra_v1
from api.gen.dra.v1beta1 import api_pb2_grpc as dra_v1beta1
from dra_driver.kubeletplugin import protocol as proto
from dra_driver.kubeletplugin.protocol import ClaimRef, PreparedDevice, PrepareResult
from dra_driver.kubeletplugin.server import PluginServer
from dra_driver.kubeletplugin.validation import MAX_CLAIMS_PER_REQUEST, MAX_MESSAGE_BYTES

UID = "0b6e1a52-7f0e-4c44-9a1e-3d1f6b0c2a11"
GOOD = ClaimRef("team-a", UID, "train-gpu.0")
STUBS = {proto.DRA_V1: dra_v1.DRAPluginStub, proto.DRA_V1BETA1: dra_v1beta1.DRAPluginStub}


class RecordingHandler:
    """Prepares every claim it is given with one device; remembers what reached it."""

    def __init__(self) -> None:
        self.prepared: list[ClaimRef] = []
        self.unprepared: list[ClaimRef] = []

    def prepare(self, claims: list[ClaimRef], answered: threading.Event | None = None) -> dict[str, PrepareResult]:
        self.prepared += claims
        device = PreparedDevice(("gpu",), "node-a", "gpu-0", ("k8s.gpu.example.com/claim=x",))
        return {c.uid: PrepareResult(devices=(device,)) for c in claims}

    def unprepare(self, claims: list[ClaimRef]) -> dict[str, str]:
        self.unprepared += claims
        return {c.uid: "" for c in claims}

    def health(self, timeout: float) -> list[tuple[str, str, int, str]]:
        return []


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[RecordingHandler, grpc.Channel]]:
    handler = RecordingHandler()
    server = PluginServer("gpu.example.com", tmp_path / "p" / "dra.sock", tmp_path / "r" / "reg.sock", handler)
    server.start()
    channel = grpc.insecure_channel(
        f"unix://{server.dra_socket}", options=[("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES)]
    )
    try:
        yield handler, channel
    finally:
        channel.close()
        server.stop(grace=0.5)


def _prepare(channel: grpc.Channel, version: str, claims: list[ClaimRef]) -> dict[str, PrepareResult]:
    stub = STUBS[version](channel)
    response = stub.NodePrepareResources(proto.prepare_request(version, claims), timeout=10)
    return proto.prepare_results_from_pb(response)


def _unprepare(channel: grpc.Channel, version: str, claims: list[ClaimRef]) -> dict[str, str]:
    stub = STUBS[version](channel)
    response = stub.NodeUnprepareResources(proto.unprepare_request(version, claims), timeout=10)
    return proto.unprepare_errors_from_pb(response)


@pytest.mark.parametrize("version", [proto.DRA_V1, proto.DRA_V1BETA1])
def test_a_path_in_the_namespace_gets_a_per_claim_error_and_never_reaches_the_handler(
    served: tuple[RecordingHandler, grpc.Channel], version: str
) -> None:
    handler, channel = served
    sneaky = ClaimRef("fz/resourceclaims/other#", "1234abcd", "x")
    results = _prepare(channel, version, [GOOD, sneaky])
    assert results[GOOD.uid].error == "" and results[GOOD.uid].devices
    error = results[sneaky.uid].error
    assert error.startswith("invalid claim namespace 'fz/resourceclaims/other#'")
    assert "DNS-1123 label" in error
    assert handler.prepared == [GOOD]


@pytest.mark.parametrize(
    ("claim", "field", "valid"),
    [
        (ClaimRef("ns", UID, "Bad_Name"), "name", "DNS-1123 subdomain"),
        (ClaimRef("ns", UID, "x" * 254), "name", "at most 253"),
        (ClaimRef("n" * 64, UID, "ok"), "namespace", "at most 63"),
        (ClaimRef("ns", "", "ok"), "uid", "must not be empty"),
        (ClaimRef("ns", "not-a-uid!", "ok"), "uid", "hexadecimal"),
        (ClaimRef("ns", "a" * 129, "ok"), "uid", "at most 128"),
    ],
)
def test_each_invalid_field_is_named_with_what_is_valid(
    served: tuple[RecordingHandler, grpc.Channel], claim: ClaimRef, field: str, valid: str
) -> None:
    handler, channel = served
    error = _prepare(channel, proto.DRA_V1, [claim])[claim.uid].error
    assert error.startswith(f"invalid claim {field} ") and valid in error
    assert len(error) < 400, "the echoed value is shortened"
    assert handler.prepared == []


def test_unprepare_of_an_invalid_claim_is_refused_the_same_way(served: tuple[RecordingHandler, grpc.Channel]) -> None:
    handler, channel = served
    bad = ClaimRef("ns", "abc", "../../etc")
    errors = _unprepare(channel, proto.DRA_V1, [GOOD, bad])
    assert errors[GOOD.uid] == ""
    assert errors[bad.uid].startswith("invalid claim name '../../etc'")
    assert handler.unprepared == [GOOD]


def test_a_request_with_too_many_claims_is_refused_whole(served: tuple[RecordingHandler, grpc.Channel]) -> None:
    handler, channel = served
    claims = [ClaimRef("ns", f"{i:08x}", f"c{i}") for i in range(MAX_CLAIMS_PER_REQUEST + 1)]
    with pytest.raises(grpc.RpcError) as exc:
        _prepare(channel, proto.DRA_V1, claims)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {MAX_CLAIMS_PER_REQUEST}" in str(exc.value.details())
    assert handler.prepared == []


def test_the_largest_accepted_request_is_served(served: tuple[RecordingHandler, grpc.Channel]) -> None:
    handler, channel = served
    claims = [ClaimRef("ns", f"{i:08x}", f"c{i}") for i in range(MAX_CLAIMS_PER_REQUEST)]
    results = _prepare(channel, proto.DRA_V1, claims)
    assert len(results) == MAX_CLAIMS_PER_REQUEST and not any(r.error for r in results.values())
    assert len(handler.prepared) == MAX_CLAIMS_PER_REQUEST


def test_a_message_over_the_size_cap_is_refused_by_grpc(served: tuple[RecordingHandler, grpc.Channel]) -> None:
    handler, channel = served
    huge = ClaimRef("ns", UID, "x" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(grpc.RpcError) as exc:
        _prepare(channel, proto.DRA_V1, [huge])
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert handler.prepared == []
