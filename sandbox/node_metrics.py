"""Where each sandbox node's plugin serves Prometheus ``/metrics``: ``nodes/<node>/metrics.json``.

``agents.plugin_command`` picks a free port per node and records it here; ``dra-gpu sandbox status`` reads it
back into the status document (``metrics``: node -> URL). The plugin listens on loopback: on simulated nodes that
is this host's, on real nodes (``--kubelet real``) the sandbox's network namespace's (docs/metrics.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from sandbox.atomic import write_atomic
from sandbox.layout import Layout


def record_file(layout: Layout, node: str) -> Path:
    return layout.node(node) / "metrics.json"


def url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/metrics"


def record(layout: Layout, node: str, address: str, port: int) -> None:
    """Remember where ``node``'s plugin serves its metrics."""
    path = record_file(layout, node)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"address": address, "port": port, "url": url(address, port)}
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode())


def urls(layout: Layout, nodes: Iterable[str]) -> dict[str, str]:
    """Node -> metrics URL, for the nodes whose plugin has one recorded (an unreadable record counts as none)."""
    found = {}
    for node in nodes:
        try:
            found[node] = str(json.loads(record_file(layout, node).read_text())["url"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found
