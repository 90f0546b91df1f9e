"""The kubelet plugin daemon: wiring, start-up, the publish loop, health endpoints, graceful shutdown.

Built by ``starting.main`` once the gRPC services serve behind its gate (registration comes first) and the
driver's files under ``--driver-root`` are found. Start-up here: Prometheus ``/metrics`` (``--metrics-port``,
off by default; kubelet_plugin/metrics.py, docs/metrics.md) -> NVML session (the driver root's
``libnvidia-ml.so.1`` unless ``--nvml-lib``) -> inventory -> API capabilities -> checkpoint -> the first
publication handed to the slice reconciler -> repair (all but its GPU settings step; every GPU's lock taken)
-> the gate opens (claims are served; ``/readyz`` says ready once the slices are published too) -> repair's
GPU settings check after the first publication (``repair.DeferredSettings``: ``nvidia-smi`` per GPU, each
GPU's lock let go once it is checked). A fatal error at start-up (no NVML, the metrics port in use) is a
``FatalError``: ``starting.main`` logs it in one line, removes the sockets and exits with code 1. A loop
re-scans the hardware every ``rescan_seconds`` and hands the pool to the reconciler, which publishes it (no
write when nothing changed), restores slices changed or deleted by others and retries while the API server
is away; the loop itself never waits for the API server. Every API request has the timeouts of
``--api-connect-timeout`` / ``--api-read-timeout``. SIGTERM stops the services (sockets removed) and closes
NVML; slices stay, so a restarted plugin takes over seamlessly.
"""

from __future__ import annotations

import dataclasses
import http.server
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

from api.partitioning import GpuMode, Mig, PartitioningConfig, load_config
from dra_driver.driver_root import DriverFiles, discover_driver_files
from dra_driver.inventory import Inventory
from dra_driver.kubeletplugin.protocol import ClaimRef, PrepareResult
from dra_driver.kubeletplugin.server import Answered, PluginServer
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.events import EventWatcher, GpuEvent
from dra_driver.nvml.session import Nvml
from dra_driver.resourceslice.publisher import PublishResult, SlicePublisher
from dra_driver.resourceslice.reconciler import SliceReconciler
from dra_driver.slices.builder import build_pool
from kubelet_plugin.api_facts import ApiFacts
from kubelet_plugin.cdi_specs import driver_edits, read_mig_minors
from kubelet_plugin.checkpoint import Checkpoint, read_boot_id
from kubelet_plugin.driver import GpuDriver
from kubelet_plugin.gpu_health import GpuHealth
from kubelet_plugin.hardware import HardwareOps
from kubelet_plugin.metrics import MetricsServer, PluginMetrics
from kubelet_plugin.modes_hardware import NvmlModeHardware
from kubelet_plugin.modes_watch import STATE_FILE, GpuModesWatch
from kubelet_plugin.mps_supervisor import MpsSupervisor
from kubelet_plugin.repair import DeferredSettings, repair
from kubelet_plugin.settings import Settings
from kubelet_plugin.sharing import DriverTools

log = logging.getLogger(__name__)
HEALTHY, UNHEALTHY = 1, 2
SETTINGS_WITHIN_S = 10.0  # start-up repair's GPU settings check waits this long at most for the first publication


def _matching_nvml(files: DriverFiles, nvml_version: str) -> DriverFiles:
    """The driver files of the version NVML reports (they differ only when ``--nvml-lib`` loaded another NVML)."""
    if files.version == nvml_version:
        return files
    log.warning(
        "NVML reports driver %s, %s has %s: using %s's files", nvml_version, files.root, files.version, nvml_version
    )
    return discover_driver_files(files.root, files.host_root, nvml_version)


class Plugin:
    def __init__(
        self, settings: Settings, files: DriverFiles, server: PluginServer, state_lock: IO[str], api: Future[ApiFacts]
    ) -> None:
        """From ``starting.main``: the driver's files found under the driver root; the gRPC services, already
        serving behind ``starting.StartingGate``; the node's state lock, held; the API server's facts, being
        fetched."""
        self.settings = settings
        self.stopping = threading.Event()
        self.ready = threading.Event()  # published and serving claims
        self.published = threading.Event()  # the first publication is written
        self._serving = False
        self._ready_lock = threading.Lock()
        self.metrics = PluginMetrics()
        self.metrics_server = (  # first: a port in use fails the start before anything else is touched
            MetricsServer(self.metrics.registry, settings.metrics_address, settings.metrics_port)
            if settings.metrics_port
            else None
        )
        if self.metrics_server is not None:
            log.info("metrics on %s:%d/metrics", settings.metrics_address, self.metrics_server.port)
        self.nvml = Nvml(settings.nvml_lib or files.nvml_library)
        self.nvml.open()
        self._inventory = discover(self.nvml, self.settings.sysfs_root)
        self.driver_files = _matching_nvml(files, self._inventory.driver_version)
        log.info(
            "driver %s under %s: %d libraries, %d binaries, %d firmware files",
            self.driver_files.version,
            settings.driver_root,
            len(self.driver_files.libraries),
            len(self.driver_files.binaries),
            len(self.driver_files.firmware),
        )
        self.config = self._load_config(settings.partitioning_config)
        facts = api.result()  # asked for right after registration (api_facts.py)
        self.kube, self.caps = facts.kube, facts.caps
        self.labels: dict[str, str] = facts.node.get("metadata", {}).get("labels") or {}
        self._health_changed = threading.Condition()
        self._device_gpu: dict[str, int] = {}  # device name -> GPU index, of every device published
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        settings.cdi_dir.mkdir(parents=True, exist_ok=True)
        self._state_lock = state_lock
        self.driver = GpuDriver(
            settings.driver_name,
            settings.node_name,
            self.kube,
            Checkpoint.load(settings.state_dir / "checkpoint.json", read_boot_id(settings.boot_id_file)),
            HardwareOps.for_driver(self.nvml, self.driver_files, settings.state_dir / "mps"),
            lambda: self._inventory,
            settings.cdi_dir,
            settings.state_dir / "mps",
            read_mig_minors(),
            driver_edits(self.driver_files),
            dynamic_mig=self.caps.partitionable_devices,  # else claims get the static MIG devices that exist
            metrics=self.metrics,
            device_status=settings.claim_device_status,
            claim_read_s=settings.api_timeouts.connect + settings.api_timeouts.read,
        )
        self.metrics.watch_gpus(lambda: self._inventory)
        self.gpu_modes = GpuModesWatch(  # NodeGpuModes: desired modes per GPU from the controller (modes_watch.py)
            self.kube,
            settings.node_name,
            settings.driver_name,
            self.caps.api_version,
            settings.state_dir / STATE_FILE,
            NvmlModeHardware(self.nvml, DriverTools.of(self.driver_files)),
            self.driver.locks,
            lambda: self._inventory,
            lambda g: self.config.mode_for(self.labels, g.index, g.uuid, g.product_name),
            self._prepared_by_gpu,
            lambda: dict(self._device_gpu),
            self._republish_now,
            self.caps.partitionable_devices,
            retry_s=settings.rescan_seconds,
        )
        self.slices = SliceReconciler(
            SlicePublisher.for_node(
                self.kube, self.caps, settings.driver_name, settings.node_name, self.metrics.slice_written, facts.node
            ),
            on_published=self._published,
        )
        self.server = server
        self.mps_supervisor = MpsSupervisor(self.driver)  # restarts MPS daemons that die
        self.gpu_health = GpuHealth(settings.driver_name, settings.xid_quiet_seconds, settings.ignored_xids)
        self.events = EventWatcher(self.nvml, lambda: [(g.index, g.uuid) for g in self._inventory.gpus], self._on_event)
        self._rescan: threading.Thread | None = None
        self._settings: DeferredSettings | None = None

    @staticmethod
    def _load_config(path: Path | None) -> PartitioningConfig:
        if path is None or not path.exists():
            return PartitioningConfig()
        return load_config(path.read_text())

    def modes(self, inv: Inventory) -> dict[int, GpuMode]:
        """Each GPU's mode: the one applied from its NodeGpuModes entry, else the PartitioningConfig's."""
        return {
            g.index: applied.mode
            if (applied := self.gpu_modes.applied_mode(g.uuid))
            else self.config.mode_for(self.labels, g.index, g.uuid, g.product_name)
            for g in inv.gpus
        }

    def _prepared_by_gpu(self) -> dict[str, list[str]]:
        """GPU UUID -> "namespace/name" of the claims the checkpoint holds on it (prepared or in progress)."""
        out: dict[str, list[str]] = {}
        for record in self.driver.checkpoint.claims().values():
            for device in record.devices:
                out.setdefault(device.hardware.gpu_uuid, []).append(f"{record.claim.namespace}/{record.claim.name}")
        return out

    def _republish_now(self, timeout: float = 10.0) -> None:
        """After a mode change: read the inventory again, publish, and wait (at most ``timeout``) until done."""
        inv = discover(self.nvml, self.settings.sysfs_root)
        with self._health_changed:
            self._inventory = inv
        self.publish()
        for _ in range(int(timeout / 0.1)):
            if self.slices.settled() or self.stopping.wait(0.1):
                return
        log.warning("slices not published within %.0fs after a GPU mode change", timeout)

    # DraHandler
    def prepare(
        self, claims: list[ClaimRef], within_s: float | None = None, answered: Answered | None = None
    ) -> dict[str, PrepareResult]:
        return self.driver.prepare(claims, within_s, answered)

    def unprepare(self, claims: list[ClaimRef], within_s: float | None = None) -> dict[str, str]:
        return self.driver.unprepare(claims, within_s)

    def health(self, timeout: float) -> list[tuple[str, str, int, str]]:
        """Every device ever published, by its GPU: healthy while NVML answers for the GPU and it has no fatal
        XID or ECC condition (gpu_health.py)."""
        with self._health_changed:
            if timeout:
                self._health_changed.wait(timeout)
            inv = self._inventory
            devices = dict(self._device_gpu)
        reasons = {u.index: u.reason for u in inv.unhealthy}
        reasons |= {g.index: r for g in inv.gpus if (r := self.gpu_health.unhealthy_reason(g.uuid))}
        healthy = {g.index for g in inv.gpus} - set(reasons)
        node = self.settings.node_name
        return sorted(
            (node, name, HEALTHY if gpu in healthy else UNHEALTHY, reasons.get(gpu, ""))
            for name, gpu in devices.items()
        )

    def start(self, open_gate: Callable[[Plugin], None]) -> None:
        """Publish, repair, then ``open_gate(self)``: the gRPC services' calls come to this plugin from then on.

        The first publication goes out first (its writes wait on the API server while repair runs); slices
        describe the hardware, which repair does not change (it destroys only unowned partitions of GPUs
        partitioned per claim, which slices never list). A claim allocated meanwhile waits in the gate."""
        self.slices.start()
        self.publish()
        # Only GPUs partitioned per claim are cleaned of unowned partitions; static MIG devices are the admin's.
        mig_gpus = (
            [i for i, m in self.modes(self._inventory).items() if isinstance(m, Mig)]
            if self.caps.partitionable_devices
            else []
        )
        report = repair(self.driver, mig_gpus, settings=False)
        log.info("repair done: %s", report)
        self._settings = DeferredSettings(self.driver)  # holds every GPU's lock until its settings are checked
        if self.published.is_set():  # published already (else ``_published`` lets the check go)
            self._settings.go()
        self.mps_supervisor.start()
        self.events.start()
        open_gate(self)
        self._serving = True
        self._maybe_ready()
        # after the first publication (nvidia-smi is slow), SETTINGS_WITHIN_S at the latest
        self._settings.start(within_s=SETTINGS_WITHIN_S)
        self.gpu_modes.start()
        self._rescan = threading.Thread(target=self._rescan_loop, name="rescan", daemon=True)
        self._rescan.start()

    def publish(self) -> None:
        """Build the pool from the current inventory and hand it to the reconciler (returns at once). GPUs about
        to change mode (NodeGpuModes) are left out meanwhile."""
        inv = self._inventory
        if draining := self.gpu_modes.draining():
            inv = dataclasses.replace(inv, gpus=tuple(g for g in inv.gpus if g.uuid not in draining))
        taints = {g.index: self.gpu_health.taints(g.uuid) for g in inv.gpus}
        pool = build_pool(inv, self.modes(inv), self.caps, self.settings.driver_name, self.settings.node_name, taints)
        for note in pool.notes:
            log.warning("slices: %s", note)
        with self._health_changed:
            for device in pool.devices():
                index = device.attribute("index")
                if isinstance(index, int):
                    self._device_gpu[device.name] = index
        self.slices.set_desired(pool)

    def _on_event(self, event: GpuEvent) -> None:
        """An NVML event: a new taint is published and reported to the kubelet at once."""
        if self.gpu_health.event(event):
            with self._health_changed:
                self._health_changed.notify_all()
            self.publish()

    def _published(self, result: PublishResult) -> None:
        self.metrics.published(sum(len(spec.get("devices") or []) for spec in result.slices.values()))
        if result.writes:
            log.info("published %d slice write(s), generation %d", result.writes, result.generation)
        if not self.published.is_set():
            self.published.set()
            if self._settings is not None:
                self._settings.go()
            self._maybe_ready()

    def _maybe_ready(self) -> None:
        """Ready (``/readyz``) once the slices are published and claims are served (repair done)."""
        with self._ready_lock:
            if self.published.is_set() and self._serving and not self.ready.is_set():
                log.info("ready: slices published, claims served")
                self.ready.set()

    def _rescan_loop(self) -> None:
        while not self.stopping.wait(self.settings.rescan_seconds):
            try:
                inv = discover(self.nvml, self.settings.sysfs_root)
                recovered = self.gpu_health.recover(g.uuid for g in inv.gpus)
                with self._health_changed:
                    changed = inv != self._inventory or recovered
                    self._inventory = inv
                    if changed:
                        self._health_changed.notify_all()
                self.publish()  # first: hands the pool over and returns at once
                self.driver.retry_pending_unprepares()  # undos a GPU refused earlier (e.g. lost, now back)
            except Exception:
                log.exception("re-scan failed; retrying in %.0fs", self.settings.rescan_seconds)

    def stop(self) -> None:
        self.stopping.set()
        if self._settings is not None:
            self._settings.cancel()  # not checked yet: claims waiting for a GPU go on (and end) now
        self.server.stop()
        self.gpu_modes.stop()
        if self._rescan is not None:
            self._rescan.join(timeout=30)
        self.slices.stop()
        self.events.stop()
        if self._settings is not None:
            self._settings.join(timeout=30)  # nvidia-smi calls in flight end before NVML goes away
        self.mps_supervisor.stop()  # the daemons keep running for the containers and the next plugin
        self.driver.shutdown()  # finish claims in flight before NVML goes away
        self.nvml.close()
        self._state_lock.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()


def serve_health(plugin: Plugin, port: int) -> None:
    """``/healthz`` (not stopping) and ``/readyz`` (slices published) on 127.0.0.1:``port``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = {"/healthz": not plugin.stopping.is_set(), "/readyz": plugin.ready.is_set()}.get(self.path)
            self.send_response(404 if ok is None else 200 if ok else 503)
            self.end_headers()
            self.wfile.write(b"ok\n" if ok else b"not ok\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
