"""Parsed ResourceSlices kept between calls by a long-lived reader (the mode controller's decisions and the
explanations it serves), so an unchanged slice is parsed once, not on every pass.

A slice is looked up by ``metadata.uid`` and ``metadata.resourceVersion``: the API server gives every write
a new resourceVersion, so an equal pair is an equal object. Objects without both (YAML files, objects built
in memory) are parsed every time. ``retain`` drops what the cluster no longer has. Parsed slices are
immutable apart from what they remember for the allocator (``Slice.device_ids``, a device's selector
results), which is the same whoever asks; threads may share them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from dra_driver.structured.model import Slice
from dra_driver.structured.parse import parse_slice

Obj = Mapping[str, Any]


def version_key(obj: Obj) -> tuple[str, str] | None:
    """(uid, resourceVersion) of an object as the API server returned it; None without both."""
    meta = obj.get("metadata") or {}
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    return (str(uid), str(version)) if uid and version else None


class ParsedSlices:
    """``parse_slice`` with memory: ``memo(obj)`` is ``parse_slice(obj)``, parsed once per uid and version."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str], Slice] = {}
        self._lock = threading.Lock()
        self.parses = 0  # how many slices were parsed, not found (for tests and the bench)

    def __call__(self, obj: Obj) -> Slice:
        key = version_key(obj)
        if key is None:
            return parse_slice(obj)
        found = self._parsed.get(key)
        if found is None:
            found = parse_slice(obj)  # outside the lock: two threads may both parse a new slice, once each
            with self._lock:
                self._parsed[key] = found
                self.parses += 1
        return found

    def retain(self, live: Iterable[Obj]) -> None:
        """Forget every slice that is not one of ``live`` (the cluster's slices now)."""
        keep = {k for k in map(version_key, live) if k is not None}
        with self._lock:
            for key in [k for k in self._parsed if k not in keep]:
                del self._parsed[key]

    @property
    def size(self) -> int:
        """How many parsed slices are kept."""
        return len(self._parsed)
