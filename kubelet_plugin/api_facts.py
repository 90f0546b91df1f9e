"""What the plugin learns from the API server at start-up: a client, the cluster's capabilities, its Node.

``starting.main`` asks for them in a thread right after registration (``in_background``), so the API server's
answers (discovery, the capability dry runs, the Node) come back while the plugin's modules import and NVML
is read, and the client's pool is filled with the connections the first publication will use at once;
``plugin.Plugin`` waits for them where it needs them. A failure (the API server unreachable, no
``resource.k8s.io`` version this driver speaks) is raised there.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from dra_driver.k8s import Obj, resource_path
from dra_driver.kubehttp import HttpKube
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.probe import probe
from kubelet_plugin.settings import Settings

FIRST_BURST = 6  # connections the first publication uses at once: 4 slice writers, the lists of its 2 watches


@dataclass(frozen=True)
class ApiFacts:
    kube: HttpKube  # persistent connections, no ``kubernetes`` import
    caps: Capabilities
    node: Obj  # the plugin's Node object; {} when there is none (yet)


def fetch(settings: Settings) -> ApiFacts:
    kube = HttpKube.from_kubeconfig(settings.kubeconfig, settings.api_timeouts)
    caps = probe(kube)
    node = kube.get(resource_path("v1", "nodes", settings.node_name)) or {}
    kube.fill(FIRST_BURST)
    return ApiFacts(kube, caps, node)


def in_background(settings: Settings) -> Future[ApiFacts]:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-facts")
    try:
        return pool.submit(fetch, settings)
    finally:
        pool.shutdown(wait=False)  # the thread ends with its one task
