"""The plugin's Prometheus metrics: prepares and unprepares move them, failures are counted by reason, and the
endpoint serves them (docs/metrics.md)."""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynvml
import pytest
from prometheus_client.parser import text_string_to_metric_families

import api.errors
from dra_driver import cdi, errors
from dra_driver.inventory import UnhealthyGpu
from dra_driver.k8s import ApiError
from dra_driver.kubeletplugin.protocol import ClaimRef
from kubelet_plugin.driver import GpuDriver
from kubelet_plugin.metrics import REASONS, MetricsServer, PluginMetrics, error_reason, metrics_url
from kubelet_plugin.plan import ClaimRejected
from kubelet_plugin.settings import parse
from kubelet_plugin.sharing import IntervalConflict
from kubelet_plugin.transaction import UndoFailed
from tests.kubelet_plugin.conftest import Node, claim, time_slicing

MIG_0 = "gpu-0-mig-1g-5gb-0"


def _value(driver: GpuDriver, name: str, **labels: str) -> float:
    value = driver.metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"no sample {name}{labels}"
    return value


def _prepared(driver: GpuDriver) -> dict[str, float]:
    return {k: _value(driver, "dra_gpu_prepared_devices", kind=k) for k in ("gpu", "mig", "timeslice", "shared")}


def _errors(driver: GpuDriver) -> dict[str, float]:
    return {r: v for r in REASONS if (v := _value(driver, "dra_gpu_prepare_errors_total", reason=r))}


def test_a_prepare_and_an_unprepare_move_their_histograms_and_the_prepared_devices_gauge(node: Node) -> None:
    mig, whole = node.api.add(claim("u1", [MIG_0])), node.api.add(claim("u2", ["gpu-1", "gpu-2-ts-0"]))
    driver = node.driver()
    assert _prepared(driver) == {"gpu": 0, "mig": 0, "timeslice": 0, "shared": 0}
    assert _value(driver, "dra_gpu_prepare_duration_seconds_count", result="success") == 0
    assert all(r == "" for r in (res.error for res in driver.prepare([mig, whole]).values()))
    assert _value(driver, "dra_gpu_prepare_duration_seconds_count", result="success") == 2
    assert _value(driver, "dra_gpu_prepare_duration_seconds_sum", result="success") > 0
    assert _value(driver, "dra_gpu_prepare_duration_seconds_count", result="error") == 0
    assert _prepared(driver) == {"gpu": 1, "mig": 1, "timeslice": 1, "shared": 0}
    driver.prepare([mig])  # answered from the checkpoint: timed too, counted once in the gauge
    assert _value(driver, "dra_gpu_prepare_duration_seconds_count", result="success") == 3
    assert _prepared(driver)["mig"] == 1
    assert driver.unprepare([mig]) == {"u1": ""}
    assert _value(driver, "dra_gpu_unprepare_duration_seconds_count", result="success") == 1
    assert _prepared(driver) == {"gpu": 1, "mig": 0, "timeslice": 1, "shared": 0}
    assert _errors(driver) == {}


def test_a_restarted_plugin_reports_the_devices_its_checkpoint_holds(node: Node) -> None:
    node.driver().prepare([node.api.add(claim("u1", [MIG_0, "gpu-1"]))])
    assert _prepared(node.driver())["mig"] == 1 and _prepared(node.driver())["gpu"] == 1


def test_failed_prepares_are_counted_by_reason(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    bad_config = node.api.add(claim("bad", ["gpu-0-ts-0"], config=time_slicing("Sometimes")))
    gone = ClaimRef("ns", "gone", "claim-gone")
    lost = node.api.add(claim("lost", ["gpu-3"]))
    node.hardware.lose(3)
    driver = node.driver()
    driver.prepare([bad_config, gone, lost])
    assert _errors(driver) == {"config": 1, "claim": 1, "hardware": 1}
    assert _value(driver, "dra_gpu_prepare_duration_seconds_count", result="error") == 3
    first, second = node.api.add(claim("a", [MIG_0])), node.api.add(claim("b", [MIG_0]))
    driver.prepare([first])
    driver.prepare([second])  # the placement is taken
    driver.prepare([node.api.add(claim("long", ["gpu-1-ts-0"], config=time_slicing("Long")))])
    driver.prepare([node.api.add(claim("short", ["gpu-1-ts-1"], config=time_slicing("Short")))])
    assert _errors(driver)["conflict"] == 2

    def disk_full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def api_down(path: str) -> dict[str, Any] | None:
        raise ApiError("GET", path, 503, '{"message": "unavailable"}')

    monkeypatch.setattr(cdi, "write_spec", disk_full)
    driver.prepare([node.api.add(claim("full", ["gpu-4"]))])
    monkeypatch.setattr(node.api, "get", api_down)
    driver.prepare([node.api.add(claim("api", ["gpu-5"]))])
    assert _errors(driver) == {"config": 1, "claim": 1, "hardware": 1, "conflict": 2, "internal": 1, "api": 1}


def _rejected(message: str, cause: BaseException) -> ClaimRejected:
    try:
        raise ClaimRejected(message) from cause
    except ClaimRejected as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (_rejected("invalid configuration", api.errors.ConfigError("sharing", "bad")), "config"),
        (_rejected("interval", IntervalConflict("Long vs Short")), "conflict"),
        (ClaimRejected("claim is not allocated (yet)"), "claim"),
        (errors.InsufficientResources("create", pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES, "busy"), "conflict"),
        (errors.GpuLost("apply", pynvml.NVML_ERROR_GPU_IS_LOST, "lost"), "hardware"),
        (errors.NvmlUnavailable("no NVML"), "hardware"),
        (UndoFailed("GPU 0 did not answer"), "hardware"),
        (ApiError("GET", "/x", 503, "{}"), "api"),
        (api.errors.ConfigError("field", "bad"), "config"),
        (OSError(errno.ENOSPC, "disk full"), "internal"),
        (KeyError("bug"), "internal"),
    ],
)
def test_every_prepare_failure_has_one_reason_of_a_closed_set(exc: BaseException, reason: str) -> None:
    assert error_reason(exc) == reason and reason in REASONS


def test_gpu_health_is_one_per_gpu_uuid_and_a_lost_gpu_keeps_its_uuid(node: Node) -> None:
    metrics = PluginMetrics()
    inventory = node.inventory
    metrics.watch_gpus(lambda: inventory)
    gpu6 = node.inventory.gpu(6)
    assert metrics.registry.get_sample_value("dra_gpu_device_health", {"uuid": gpu6.uuid, "index": "6"}) == 1
    inventory = dataclasses.replace(
        node.inventory,
        gpus=tuple(g for g in node.inventory.gpus if g.index != 6),
        unhealthy=(UnhealthyGpu(6, "GPU is lost"),),
    )
    assert metrics.registry.get_sample_value("dra_gpu_device_health", {"uuid": gpu6.uuid, "index": "6"}) == 0
    healthy = [s for f in metrics.registry.collect() if f.name == "dra_gpu_device_health" for s in f.samples]
    assert len(healthy) == 8 and sum(s.value for s in healthy) == 7


def test_slice_writes_and_published_devices_are_set_by_their_hooks() -> None:
    metrics = PluginMetrics()
    for operation in ("create", "create", "update", "delete"):
        metrics.slice_written(operation)
    metrics.published(26)
    get = metrics.registry.get_sample_value
    assert [get("dra_gpu_slice_writes_total", {"operation": o}) for o in ("create", "update", "delete")] == [2, 1, 1]
    assert get("dra_gpu_published_devices") == 26


@pytest.fixture
def server() -> Iterator[tuple[PluginMetrics, MetricsServer]]:
    metrics = PluginMetrics()
    srv = MetricsServer(metrics.registry, "127.0.0.1", 0)
    yield metrics, srv
    srv.stop()


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_endpoint_serves_every_metric_of_its_own_registry(server: tuple[PluginMetrics, MetricsServer]) -> None:
    metrics, srv = server
    other = PluginMetrics()  # a second plugin in the same process does not collide or leak into this one
    other.observe_prepare(1.0)
    metrics.observe_prepare(0.2)
    metrics.observe_prepare(0.3, errors.GpuLost("apply", pynvml.NVML_ERROR_GPU_IS_LOST, "lost"))
    metrics.observe_unprepare(0.1)
    metrics.published(3)
    metrics.slice_written("create")
    samples = _scrape(metrics_url("127.0.0.1", srv.port))
    assert samples[("dra_gpu_prepare_duration_seconds_count", (("result", "success"),))] == 1
    assert samples[("dra_gpu_prepare_duration_seconds_bucket", (("le", "0.25"), ("result", "success")))] == 1
    assert samples[("dra_gpu_prepare_duration_seconds_count", (("result", "error"),))] == 1
    assert samples[("dra_gpu_unprepare_duration_seconds_count", (("result", "success"),))] == 1
    assert samples[("dra_gpu_prepare_errors_total", (("reason", "hardware"),))] == 1
    assert samples[("dra_gpu_prepare_errors_total", (("reason", "config"),))] == 0
    assert samples[("dra_gpu_published_devices", ())] == 3
    assert samples[("dra_gpu_slice_writes_total", (("operation", "create"),))] == 1
    assert not any(name.startswith("python_") or name.startswith("process_") for name, _ in samples)


def test_a_metrics_port_in_use_is_a_start_up_error_naming_the_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(errors.FatalError, match=f"--metrics-port.*127.0.0.1:{port}.*in use") as caught:
            MetricsServer(PluginMetrics().registry, "127.0.0.1", port)
    assert "--metrics-port 0 to turn metrics off" in str(caught.value)


def test_a_plugin_whose_metrics_port_is_taken_exits_1_in_one_line_before_touching_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "kubelet_plugin", "--node-name", "n", "--state-dir", str(tmp_path / "state")]
        argv += ["--metrics-port", str(port), "--metrics-address", "127.0.0.1"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert f"cannot start: --metrics-port / --metrics-address: cannot listen on 127.0.0.1:{port}" in line
    assert not (tmp_path / "state").exists()


def test_metrics_are_off_by_default_and_the_port_and_address_come_from_flags_or_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("METRICS_PORT", raising=False)
    monkeypatch.delenv("METRICS_ADDRESS", raising=False)
    default = parse(["--node-name", "n"])
    assert (default.metrics_port, default.metrics_address) == (0, "0.0.0.0")
    flags = parse(["--node-name", "n", "--metrics-port", "9400", "--metrics-address", "127.0.0.1"])
    assert (flags.metrics_port, flags.metrics_address) == (9400, "127.0.0.1")
    monkeypatch.setenv("METRICS_PORT", "9500")
    assert parse(["--node-name", "n"]).metrics_port == 9500
    with pytest.raises(SystemExit):
        parse(["--node-name", "n", "--metrics-port", "70000"])
    assert "--metrics-port: 70000 is out of range" in capsys.readouterr().err


def test_scrape_urls_of_wildcard_addresses_point_at_loopback() -> None:
    assert metrics_url("0.0.0.0", 9400) == "http://127.0.0.1:9400/metrics"
    assert metrics_url("::", 9400) == "http://[::1]:9400/metrics"
    assert metrics_url("10.0.0.7", 9400) == "http://10.0.0.7:9400/metrics"
