"""The health stream, over a real unix socket: full snapshots on connect, on change and periodically, and
a stream that ends as soon as its client or the server goes away."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from api.gen.drahealth.v1 import api_pb2 as health_v1_pb
from api.gen.drahealth.v1 import api_pb2_grpc as health_v1
from api.gen.drahealth.v1alpha1 import api_pb2 as health_v1alpha1_pb
from api.gen.drahealth.v1alpha1 import api_pb2_grpc as health_v1alpha1
from dra_driver.kubeletplugin.health import HEALTH_CHECK_TIMEOUT_S, HEALTH_RESEND_S, HealthFeed
from dra_driver.kubeletplugin.protocol import ClaimRef, PrepareResult
from dra_driver.kubeletplugin.server import PluginServer

HEALTHY, UNHEALTHY = 1, 2
VERSIONS = {"v1": (health_v1, health_v1_pb), "v1alpha1": (health_v1alpha1, health_v1alpha1_pb)}


class Devices:
    """A handler whose health blocks on a condition like the plugin's, and changes when told to."""

    def __init__(self, names: list[str]) -> None:
        self._changed = threading.Condition()
        self._health = dict.fromkeys(names, HEALTHY)
        self.calls = 0

    def set(self, name: str, status: int) -> None:
        with self._changed:
            self._health[name] = status
            self._changed.notify_all()

    def prepare(self, claims: list[ClaimRef], answered: threading.Event | None = None) -> dict[str, PrepareResult]:
        return {}

    def unprepare(self, claims: list[ClaimRef]) -> dict[str, str]:
        return {}

    def health(self, timeout: float) -> list[tuple[str, str, int, str]]:
        with self._changed:
            self.calls += 1
            if timeout:
                self._changed.wait(timeout)
            return sorted(("node-a", name, status, "") for name, status in self._health.items())


def _serve(tmp_path: Path, devices: Devices, resend_s: float) -> tuple[PluginServer, grpc.Channel]:
    server = PluginServer(
        "gpu.example.com", tmp_path / "p" / "dra.sock", tmp_path / "r" / "reg.sock", devices, resend_s
    )
    server.start()
    return server, grpc.insecure_channel(f"unix://{server.dra_socket}")


@pytest.fixture
def devices() -> Devices:
    return Devices(["gpu-0", "gpu-1", "gpu-2"])


def _watch(channel: grpc.Channel, version: str) -> Any:
    stub_module, pb = VERSIONS[version]
    return stub_module.DRAResourceHealthStub(channel).NodeWatchResources(pb.NodeWatchResourcesRequest(), timeout=10)


def _health(message: Any) -> dict[str, int]:
    return {d.device.device_name: d.health for d in message.devices}


def _watcher_thread() -> threading.Thread | None:
    return next((t for t in threading.enumerate() if t.name == "health-watch"), None)


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_the_full_snapshot_is_sent_again_without_any_change(tmp_path: Path, devices: Devices, version: str) -> None:
    server, channel = _serve(tmp_path, devices, resend_s=0.2)
    try:
        stream = _watch(channel, version)
        began = time.monotonic()
        messages = [next(stream) for _ in range(4)]
        elapsed = time.monotonic() - began
        stream.cancel()
    finally:
        channel.close()
        server.stop(grace=0.5)
    for message in messages:
        assert _health(message) == {"gpu-0": HEALTHY, "gpu-1": HEALTHY, "gpu-2": HEALTHY}
        for device in message.devices:
            assert device.device.pool_name == "node-a"
            assert device.health_check_timeout_seconds == HEALTH_CHECK_TIMEOUT_S
            assert device.last_updated_time >= int(time.time()) - 60
    assert 0.5 <= elapsed < 5  # three resends 0.2 s apart, not a busy loop


def test_a_change_is_sent_at_once_with_every_device(tmp_path: Path, devices: Devices) -> None:
    server, channel = _serve(tmp_path, devices, resend_s=HEALTH_RESEND_S)
    try:
        stream = _watch(channel, "v1")
        first = next(stream)
        devices.set("gpu-1", UNHEALTHY)
        began = time.monotonic()
        second = next(stream)
        elapsed = time.monotonic() - began
        stream.cancel()
    finally:
        channel.close()
        server.stop(grace=0.5)
    assert _health(first) == {"gpu-0": HEALTHY, "gpu-1": HEALTHY, "gpu-2": HEALTHY}
    assert _health(second) == {"gpu-0": HEALTHY, "gpu-1": UNHEALTHY, "gpu-2": HEALTHY}
    assert elapsed < HEALTH_RESEND_S / 3  # sent for the change, not by the periodic resend


def test_the_stream_and_its_watcher_end_when_the_client_cancels(tmp_path: Path, devices: Devices) -> None:
    server, channel = _serve(tmp_path, devices, resend_s=HEALTH_RESEND_S)
    try:
        stream = _watch(channel, "v1")
        next(stream)
        watcher = _watcher_thread()
        assert watcher is not None
        stream.cancel()
        watcher.join(timeout=5)  # exits only once no stream is left
        assert not watcher.is_alive()
        calls = devices.calls
        devices.set("gpu-0", UNHEALTHY)  # nobody watches: the handler is not asked again
        assert devices.calls == calls
    finally:
        channel.close()
        server.stop(grace=0.5)


def test_stopping_the_server_ends_an_open_stream_without_waiting_for_the_grace_period(
    tmp_path: Path, devices: Devices
) -> None:
    server, channel = _serve(tmp_path, devices, resend_s=HEALTH_RESEND_S)
    try:
        stream = _watch(channel, "v1")
        next(stream)
        watcher = _watcher_thread()
        began = time.monotonic()
        server.stop(grace=10)
        stopped_in = time.monotonic() - began
        with pytest.raises(StopIteration):
            next(stream)  # ends cleanly: the server returned from the stream
    finally:
        channel.close()
    assert stopped_in < 5
    assert watcher is not None and not watcher.is_alive()


def test_two_streams_each_get_every_snapshot(tmp_path: Path, devices: Devices) -> None:
    server, channel = _serve(tmp_path, devices, resend_s=HEALTH_RESEND_S)
    try:
        one, two = _watch(channel, "v1"), _watch(channel, "v1alpha1")
        assert _health(next(one)) == _health(next(two))
        devices.set("gpu-2", UNHEALTHY)
        assert _health(next(one))["gpu-2"] == UNHEALTHY
        assert _health(next(two))["gpu-2"] == UNHEALTHY
        one.cancel()
        two.cancel()
    finally:
        channel.close()
        server.stop(grace=0.5)


def test_a_resend_interval_at_or_above_the_kubelets_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="below 30 s"):
        HealthFeed(lambda timeout: [], resend_s=HEALTH_CHECK_TIMEOUT_S)


def test_a_failing_handler_is_retried_and_the_stream_gets_the_snapshot_once_it_answers() -> None:
    failed, unchanged = threading.Event(), threading.Event()

    def source(timeout: float) -> list[tuple[str, str, int, str]]:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("NVML went away")
        unchanged.wait(timeout)  # like the plugin: blocks up to ``timeout`` for a change that never comes
        return [("node-a", "gpu-0", HEALTHY, "")]

    feed = HealthFeed(source, resend_s=HEALTH_RESEND_S, watch_s=0.05)
    stream = feed.stream(lambda: True)
    assert next(stream) == [("node-a", "gpu-0", HEALTHY, "")]
    assert failed.is_set()
    feed.close()
    with pytest.raises(StopIteration):
        next(stream)
