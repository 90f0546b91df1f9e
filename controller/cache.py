"""The controller's view of the cluster: one watched collection per kind, kept in memory. No polling.

Each ``Collection`` is a ``dra_driver.resourceslice.listwatch.ListWatch`` (LIST, then WATCH from its
resourceVersion; relists after a 410 or an outage) feeding a dict by namespace/name. Every change calls
``on_change`` (the controller's "something moved" signal). ``synced`` is true once every collection has
listed once (readiness).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from api import gpumodes
from dra_driver.k8s import Kube, resource_path
from dra_driver.resourceslice.listwatch import ListWatch

Obj = Mapping[str, Any]

# kind -> (group/version, plural, query): what the controller watches
WATCHED: dict[str, tuple[str, str, dict[str, str]]] = {
    "nodes": ("v1", "nodes", {}),
    "pods": ("v1", "pods", {"fieldSelector": "spec.nodeName="}),  # only pods not bound yet
    "claims": ("resource.k8s.io/v1", "resourceclaims", {}),
    "slices": ("resource.k8s.io/v1", "resourceslices", {}),
    "classes": ("resource.k8s.io/v1", "deviceclasses", {}),
    "modes": (gpumodes.API_VERSION, gpumodes.PLURAL, {}),
}


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _version(obj: Obj) -> int:
    """resourceVersion as a number, to keep the newer of two copies (0 when it is not a number)."""
    text = str((obj.get("metadata") or {}).get("resourceVersion", ""))
    return int(text) if text.isdigit() else 0


class Collection:
    def __init__(self, kube: Kube, kind: str, on_change: Callable[[], None]) -> None:
        group_version, plural, query = WATCHED[kind]
        self.kind = kind
        self._items: dict[str, Obj] = {}
        self._lock = threading.Lock()
        self._on_change = on_change
        self.synced = threading.Event()
        self.watch = ListWatch(
            kube, resource_path(group_version, plural), dict(query), self._listed, self._event, name=f"watch-{kind}"
        )

    def _listed(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self._items = {_key(o): o for o in items}
        self.synced.set()
        self._on_change()

    def _event(self, kind: str, obj: Obj) -> None:
        with self._lock:
            if kind == "DELETED":
                self._items.pop(_key(obj), None)
            else:
                self._items[_key(obj)] = obj
        self._on_change()

    def put(self, obj: Obj) -> None:
        """An object this process just wrote (the watch brings the same, or a newer one, soon)."""
        with self._lock:
            current = self._items.get(_key(obj))
            if current is None or _version(current) <= _version(obj):
                self._items[_key(obj)] = obj

    def items(self) -> list[Obj]:
        with self._lock:
            return list(self._items.values())

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._items.get(f"{namespace}/{name}")


class ClusterCache:
    def __init__(self, kube: Kube, on_change: Callable[[], None]) -> None:
        self.collections = {kind: Collection(kube, kind, on_change) for kind in WATCHED}

    def start(self) -> None:
        for c in self.collections.values():
            c.watch.start()

    def stop(self) -> None:
        for c in self.collections.values():
            c.watch.stop()

    @property
    def synced(self) -> bool:
        return all(c.synced.is_set() for c in self.collections.values())

    def unsynced(self) -> list[str]:
        """The collections not listed yet."""
        return sorted(k for k, c in self.collections.items() if not c.synced.is_set())

    def items(self, kind: str) -> list[Obj]:
        return self.collections[kind].items()
