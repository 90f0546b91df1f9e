"""The plugin's Prometheus metrics (docs/metrics.md): one private registry per plugin, the hooks that feed it,
and its HTTP endpoint.

``PluginMetrics`` holds a ``CollectorRegistry`` of its own (never the process-global one), so several plugins or
drivers can live in one process (tests). Events are counted where they happen: the driver times every prepare
and unprepare (``observe_prepare`` / ``observe_unprepare``), the slice publisher calls ``slice_written`` after
every API write, the plugin reports each publication (``published``). State is read when scraped: prepared
devices from the checkpoint (``watch_claims``), GPU health from the current inventory (``watch_gpus``).
``error_reason`` sorts a failed prepare into a small closed set of reasons for ``dra_gpu_prepare_errors_total``.

``MetricsServer`` serves ``/metrics`` on ``--metrics-address``:``--metrics-port``; a port that cannot be bound is
a ``FatalError`` naming the flag.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Literal, TypeAlias, get_args
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_wsgi_server
from prometheus_client.registry import Collector

import api.errors
from api.config.resolve import DeviceType
from dra_driver import errors
from dra_driver.inventory import Inventory
from dra_driver.k8s import ApiError
from dra_driver.slices.names import device_type, parse_device_name
from kubelet_plugin.plan import ClaimRejected
from kubelet_plugin.records import ClaimRecord
from kubelet_plugin.settings import metrics_listen_error
from kubelet_plugin.sharing import IntervalConflict

Reason: TypeAlias = Literal["config", "conflict", "claim", "hardware", "api", "internal"]
REASONS: tuple[Reason, ...] = ("config", "conflict", "claim", "hardware", "api", "internal")
Kind: TypeAlias = DeviceType
KINDS: tuple[Kind, ...] = get_args(DeviceType)
RESULTS = ("success", "error")
# a prepare answers in milliseconds from the checkpoint, seconds when it creates MIG partitions; the kubelet waits 45 s
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0)


def error_reason(exc: BaseException) -> Reason:
    """Why a prepare failed, as one of ``REASONS``:

    config    the claim's opaque configuration (or a device name in it) is invalid
    conflict  the GPU is taken another way: a busy MIG placement, a different time-slice interval
    claim     the claim cannot be prepared here: deleted, not (yet) allocated, allocated from another node
    hardware  NVML or a driver tool (nvidia-smi, MPS) failed, the GPU is gone, an earlier attempt's undo was refused
    api       the API server failed or did not answer
    internal  anything else (a bug, a full disk): see the plugin's log
    """
    if isinstance(exc, ClaimRejected):
        if isinstance(exc.__cause__, api.errors.ConfigError):
            return "config"
        return "conflict" if isinstance(exc.__cause__, IntervalConflict) else "claim"
    if isinstance(exc, api.errors.ConfigError):
        return "config"
    if isinstance(exc, errors.InsufficientResources):
        return "conflict"
    if isinstance(exc, ApiError):
        return "api"
    if isinstance(exc, errors.RecoverableError | errors.NvmlUnavailable):  # NVML, driver tools, a refused undo
        return "hardware"
    return "internal"


def device_kind(device: str) -> Kind:
    """The kind of a published device, from its name (a whole GPU in MIG mode is still a ``gpu``)."""
    return device_type(parse_device_name(device))


def prepared_devices(claims: Iterable[ClaimRecord]) -> dict[Kind, int]:
    """Devices of the completely prepared claims, by kind (every kind present, 0 when none)."""
    counts: dict[Kind, int] = dict.fromkeys(KINDS, 0)
    for claim in claims:
        if claim.state == "PrepareCompleted":
            for d in claim.devices:
                counts[device_kind(d.device)] += 1
    return counts


class _StateCollector(Collector):
    """Gauges read when scraped: prepared devices (checkpoint) and GPU health (inventory)."""

    def __init__(self) -> None:
        self.claims: Callable[[], Mapping[str, ClaimRecord]] | None = None
        self.inventory: Callable[[], Inventory] | None = None
        self._uuids: dict[int, str] = {}  # GPU index -> UUID of every GPU seen healthy (a lost GPU has no UUID)
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        prepared = GaugeMetricFamily(
            "dra_gpu_prepared_devices", "Devices of prepared claims (checkpoint), by device kind", labels=["kind"]
        )
        if self.claims is not None:
            for kind, count in prepared_devices(self.claims().values()).items():
                prepared.add_metric([kind], count)
        yield prepared
        health = GaugeMetricFamily(
            "dra_gpu_device_health", "1 while NVML answers for the GPU, 0 when it does not", labels=["uuid", "index"]
        )
        if self.inventory is not None:
            for uuid, index, healthy in self._health(self.inventory()):
                health.add_metric([uuid, str(index)], 1 if healthy else 0)
        yield health

    def _health(self, inv: Inventory) -> list[tuple[str, int, bool]]:
        with self._lock:
            self._uuids.update({g.index: g.uuid for g in inv.gpus})
            rows = [(g.uuid, g.index, True) for g in inv.gpus]
            rows += [(self._uuids.get(u.index, ""), u.index, False) for u in inv.unhealthy]
        return sorted(rows, key=lambda r: r[1])


class PluginMetrics:
    """The metrics of one plugin, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.prepare_seconds = Histogram(
            "dra_gpu_prepare_duration_seconds",
            "Time to prepare one claim (NodePrepareResources), by result",
            ["result"],
            registry=self.registry,
            buckets=DURATION_BUCKETS,
        )
        self.unprepare_seconds = Histogram(
            "dra_gpu_unprepare_duration_seconds",
            "Time to unprepare one claim (NodeUnprepareResources), by result",
            ["result"],
            registry=self.registry,
            buckets=DURATION_BUCKETS,
        )
        self.prepare_errors = Counter(
            "dra_gpu_prepare_errors", "Claims whose prepare failed, by reason", ["reason"], registry=self.registry
        )
        self.published_devices = Gauge(
            "dra_gpu_published_devices",
            "Devices in this node's ResourceSlices as last published",
            registry=self.registry,
        )
        self.slice_writes = Counter(
            "dra_gpu_slice_writes",
            "ResourceSlice writes made to the API server, by operation (create, update, delete)",
            ["operation"],
            registry=self.registry,
        )
        # every series exists from the start, at 0; the calls' series are looked up once, not on every call
        self._prepare_by_result = {result: self.prepare_seconds.labels(result) for result in RESULTS}
        self._unprepare_by_result = {result: self.unprepare_seconds.labels(result) for result in RESULTS}
        for reason in REASONS:
            self.prepare_errors.labels(reason)
        for operation in ("create", "update", "delete"):
            self.slice_writes.labels(operation)
        self._state = _StateCollector()
        self.registry.register(self._state)

    # --- events ---------------------------------------------------------------------------------

    def observe_prepare(self, seconds: float, failure: BaseException | None = None) -> None:
        self._prepare_by_result["success" if failure is None else "error"].observe(seconds)
        if failure is not None:
            self.prepare_errors.labels(error_reason(failure)).inc()

    def observe_unprepare(self, seconds: float, failure: BaseException | None = None) -> None:
        self._unprepare_by_result["success" if failure is None else "error"].observe(seconds)

    def slice_written(self, operation: str) -> None:
        """The publisher's hook: one create, update or delete of a ResourceSlice went through."""
        self.slice_writes.labels(operation).inc()

    def published(self, devices: int) -> None:
        self.published_devices.set(devices)

    # --- state read when scraped ----------------------------------------------------------------

    def watch_claims(self, claims: Callable[[], Mapping[str, ClaimRecord]]) -> None:
        self._state.claims = claims

    def watch_gpus(self, inventory: Callable[[], Inventory]) -> None:
        self._state.inventory = inventory


class MetricsServer:
    """``/metrics`` of a registry over HTTP, on a thread of its own; ``port`` 0 picks a free port (tests)."""

    def __init__(self, registry: CollectorRegistry, address: str, port: int) -> None:
        try:
            self._httpd: WSGIServer
            self._httpd, self._thread = start_wsgi_server(port, address, registry)
        except (OSError, UnicodeError) as exc:  # in use, not an address of this host, not an address at all
            raise metrics_listen_error(address, port, exc) from exc
        self._thread.name = "metrics-http"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def metrics_url(address: str, port: int) -> str:
    """Where a plugin listening on ``address``:``port`` is scraped (the wildcard addresses: on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(address, address)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
