"""Start-up of the real kubelet plugin process for bench_prepare: spawn -> registered -> slices published, RSS.

"Registered" is the moment the registration socket appears in the registry directory: the kubelet's plugin
watcher registers a plugin on that event (the plugin creates it after its DRA socket). "Published" is the
moment the node's pool is complete in the API server: as many slices of the newest pool generation as
``resourceSliceCount`` says. Both are polled every 2 ms (the socket) and 10 ms (the API), which bounds the
error of each figure. "Settings checked" is when start-up repair's GPU settings check, which runs after the
first publication and holds each GPU's claims until its GPU is checked, logs that it is done (polled every 10 ms).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
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


def _complete_pool(slices: list[dict[str, Any]]) -> int | None:
    """Devices in the pool when its newest generation is complete, else None."""
    if not slices:
        return None
    newest = max(int(s["spec"]["pool"]["generation"]) for s in slices)
    current = [s for s in slices if int(s["spec"]["pool"]["generation"]) == newest]
    if len(current) != int(current[0]["spec"]["pool"]["resourceSliceCount"]):
        return None
    return sum(len(s["spec"].get("devices") or []) for s in current)


def measure(node: PluginNode, kube: Kube, timeout_s: float = 60.0) -> Startup:
    """Start ``node``'s plugin (no slices of it may exist yet) and time its start-up; leaves it running."""
    selector = f"spec.nodeName={node.name},spec.driver={DRIVER}"
    if kube.list(SLICES, fieldSelector=selector):
        raise RuntimeError(f"node {node.name} already has slices: start-up would be measured against them")
    t0 = time.perf_counter()
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
    devices = None
    while devices is None:
        devices = _complete_pool(kube.list(SLICES, fieldSelector=selector))
        if devices is None:
            if time.perf_counter() > deadline or not node.alive():
                raise RuntimeError(f"slices not published within {timeout_s}s: {node.log_text()[-2000:]}")
            time.sleep(0.01)
    published = time.perf_counter() - t0
    rss = rss_mb(node.process.pid)
    while not settings_checked(node):
        if time.perf_counter() > deadline or not node.alive():
            raise RuntimeError(f"GPU settings not checked within {timeout_s}s: {node.log_text()[-2000:]}")
        time.sleep(0.01)
    return Startup(registered, published, time.perf_counter() - t0, devices, rss)
