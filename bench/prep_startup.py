"""Start-up of the real kubelet plugin process for bench_prepare: spawn -> registered -> slices published, RSS.

"Registered" is the moment the registration socket appears in the registry directory: the kubelet's plugin
watcher registers a plugin on that event (the plugin creates it after its DRA socket). "Published" is the
moment the node's pool is complete in the API server: as many slices of the newest pool generation as
``resourceSliceCount`` says, seen through a watch of the node's slices opened before the plugin starts (a
watch, not a LIST every few ms, which would load the API server the plugin writes to). The socket is polled
every 2 ms. "Settings checked" is when start-up repair's GPU settings check, which runs after the
first publication and holds each GPU's claims until its GPU is checked, logs that it is done (polled every 10 ms).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench.prep_peer import rss_mb
from dra_driver.k8s import Kube
from e2e.plugin_node import DRIVER, PluginNode

SLICES = "/apis/resource.k8s.io/v1/resourceslices"
SETTINGS_CHECKED = "start-up repair: reset "  # kubelet_plugin/repair.py, DeferredSettings


def settings_checked(node: PluginNode) -> bool:
    """Has the plugin's start-up GPU settings check finished (claims on every GPU can go ahead)?"""
    return SETTINGS_CHECKED in node.log_text()


@dataclass(frozen=True)
class Startup:
    registered_s: float
    published_s: float
    settings_s: float
    devices: int
    rss_mb: float
    acked_s: float  # the plugin's own log: the API server had answered its last slice write


PUBLISHED_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .* published \d+ slice\(s\) for ", re.M)


def acked_s(log_text: str, started_wall: float) -> float:
    """Seconds from ``started_wall`` (the spawn, wall clock) to the plugin's first "published N slice(s)" line,
    which it logs once the API server has answered every write of the pool (log times have whole ms)."""
    found = PUBLISHED_LINE.search(log_text)
    if found is None:
        raise RuntimeError(f"no publication in the plugin's log: {log_text[-2000:]}")
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - started_wall


def _complete_pool(slices: list[dict[str, Any]]) -> int | None:
    """Devices in the pool when its newest generation is complete, else None."""
    if not slices:
        return None
    newest = max(int(s["spec"]["pool"]["generation"]) for s in slices)
    current = [s for s in slices if int(s["spec"]["pool"]["generation"]) == newest]
    if len(current) != int(current[0]["spec"]["pool"]["resourceSliceCount"]):
        return None
    return sum(len(s["spec"].get("devices") or []) for s in current)


def _watch_pool(kube: Kube, selector: str, rv: str, seen: dict[str, float], timeout_s: float) -> None:
    """Record in ``seen`` when the node's pool is complete (``at``, ``devices``), from a watch from ``rv``."""
    slices: dict[str, dict[str, Any]] = {}
    stream = kube.watch(SLICES, rv, int(timeout_s), fieldSelector=selector)
    try:
        for kind, obj in stream:
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                slices.pop(name, None)
            else:
                slices[name] = obj
            if (devices := _complete_pool(list(slices.values()))) is not None:
                seen.update(at=time.perf_counter(), devices=devices)
                return
    finally:
        stream.close()


def measure(node: PluginNode, kube: Kube, timeout_s: float = 60.0) -> Startup:
    """Start ``node``'s plugin (no slices of it may exist yet) and time its start-up; leaves it running."""
    selector = f"spec.nodeName={node.name},spec.driver={DRIVER}"
    existing, rv = kube.list_versioned(SLICES, fieldSelector=selector)
    if existing:
        raise RuntimeError(f"node {node.name} already has slices: start-up would be measured against them")
    seen: dict[str, float] = {}
    watcher = threading.Thread(target=_watch_pool, args=(kube, selector, rv, seen, timeout_s), daemon=True)
    watcher.start()
    t0, t0_wall = time.perf_counter(), time.time()
    node.start(kube, wait=False)
    assert node.process is not None
    deadline = t0 + timeout_s
    registered = None
    while registered is None:
        if any(node.registry_dir.glob(f"{DRIVER}-*reg.sock")):
            registered = time.perf_counter() - t0
        elif time.perf_counter() > deadline or not node.alive():
            raise RuntimeError(f"plugin not registered within {timeout_s}s: {node.log_text()[-2000:]}")
        else:
            time.sleep(0.002)
    watcher.join(max(0.0, deadline - time.perf_counter()))
    if "at" not in seen:
        raise RuntimeError(f"slices not published within {timeout_s}s: {node.log_text()[-2000:]}")
    published, devices = seen["at"] - t0, int(seen["devices"])
    rss = rss_mb(node.process.pid)
    while not settings_checked(node):
        if time.perf_counter() > deadline or not node.alive():
            raise RuntimeError(f"GPU settings not checked within {timeout_s}s: {node.log_text()[-2000:]}")
        time.sleep(0.01)
    return Startup(registered, published, time.perf_counter() - t0, devices, rss, acked_s(node.log_text(), t0_wall))
