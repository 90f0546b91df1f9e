"""Keep one collection observed: LIST, then WATCH from the list's resourceVersion, for as long as it runs.

``on_list(items)`` receives every (re)list, ``on_event(type, obj)`` every ADDED / MODIFIED / DELETED
event, both in the ListWatch's thread. A watch that the server ends (after ``watch_timeout_s``) is
resumed from the last resourceVersion seen; a 410 (resourceVersion too old) lists again at once; any
other failure lists again after a backoff (capped at ``Backoff.cap`` seconds), so observation resumes
within about that long after the API server comes back. ``stop()`` closes the open watch, which ends
the thread promptly; a LIST in flight finishes first (bounded by the client's timeouts).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from dra_driver.k8s import ApiError, Kube, Obj, WatchStream
from dra_driver.resourceslice.backoff import Backoff

log = logging.getLogger(__name__)
OnList = Callable[[list[Obj]], None]
OnEvent = Callable[[str, Obj], None]
EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED")


class ListWatch:
    def __init__(
        self,
        kube: Kube,
        path: str,
        query: dict[str, str],
        on_list: OnList,
        on_event: OnEvent,
        *,
        watch_timeout_s: int = 60,
        backoff: Backoff | None = None,
        name: str = "list-watch",
    ) -> None:
        self.kube = kube
        self.path = path
        self.query = query
        self.on_list = on_list
        self.on_event = on_event
        self.watch_timeout_s = watch_timeout_s
        self.backoff = backoff or Backoff()
        self.name = name
        self.lists = 0  # completed LISTs (the first one and every relist)
        self.version = ""  # the resourceVersion of the last list or event delivered
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stream: WatchStream | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        version = ""  # empty: list first
        while not self._stopping.is_set():
            try:
                if not version:
                    items, version = self.kube.list_versioned(self.path, **self.query)
                    self.lists += 1
                    self.on_list(items)
                    self.version = version
                version = self._watch(version)
                self.backoff.reset()
            except ApiError as exc:  # ApiUnavailable included
                version = ""
                if exc.status == 410:
                    log.info("%s: watch expired (%s); listing again", self.name, exc.message)
                    continue
                delay = self.backoff.next()
                log.warning("%s: %s; listing again in %.1fs", self.name, exc, delay)
                self._stopping.wait(delay)

    def _watch(self, version: str) -> str:
        """Follow one watch request to its end; returns the last resourceVersion seen."""
        stream = self.kube.watch(self.path, version, self.watch_timeout_s, **self.query)
        with self._lock:
            self._stream = stream
        if self._stopping.is_set():  # stop() ran before the stream was published
            stream.close()
        try:
            for kind, obj in stream:
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind in EVENT_TYPES:
                    self.on_event(kind, obj)
                self.version = version
        finally:
            with self._lock:
                self._stream = None
        return version
