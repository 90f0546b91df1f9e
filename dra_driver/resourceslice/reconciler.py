"""Keep one node's ResourceSlices of one driver equal to a desired Pool, like upstream's resourceslice controller.

``set_desired(pool)`` hands over what should be published. A worker thread publishes it with
``SlicePublisher.publish`` (fewest writes; none when nothing changed) and publishes again whenever the
slices on the server stop matching the last publication: a ``ListWatch`` over the node's slices of the
driver reports every change, so a slice deleted or modified by someone else is restored. A failed
publication is retried after a backoff (capped at ``Backoff.cap`` seconds), so publication resumes within
about that long (plus one request's timeout) after the API server comes back.

Observations that arrive while a publication is in flight are checked against its outcome once it is
done (our own writes then match); one that still differs costs one more ``publish`` (a LIST; a write
only if something really differs).

Threads: ``start()`` runs the worker and the watch, ``stop()`` ends both; a request in flight is waited
for at most ``join_timeout`` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from dra_driver.errors import RecoverableError
from dra_driver.k8s import Obj, shorten
from dra_driver.resourceslice.backoff import Backoff
from dra_driver.resourceslice.listwatch import ListWatch
from dra_driver.resourceslice.model import Pool
from dra_driver.resourceslice.publisher import PublishResult, SlicePublisher, spec_matches

log = logging.getLogger(__name__)


class SliceReconciler:
    def __init__(
        self,
        publisher: SlicePublisher,
        *,
        on_published: Callable[[PublishResult], None] | None = None,
        backoff: Backoff | None = None,
        watch_timeout_s: int = 60,
        join_timeout: float = 5.0,
    ) -> None:
        self.publisher = publisher
        self.on_published = on_published
        self.backoff = backoff or Backoff()
        self.join_timeout = join_timeout
        self.last_result: PublishResult | None = None
        self.publications = 0  # successful publish() calls
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._desired: Pool | None = None
        self._dirty = False  # the server may differ from the desired pool: publish
        self._publishing = False
        self._published: dict[str, Obj] | None = None  # name -> spec of the last successful publication
        self._seen: dict[str, Obj | None] = {}  # observed slices (None: deleted) not yet checked
        self._worker: threading.Thread | None = None
        self.watch = ListWatch(
            publisher.kube,
            publisher.base,
            {"fieldSelector": publisher.selector},
            self._on_list,
            self._on_event,
            watch_timeout_s=watch_timeout_s,
            backoff=Backoff(self.backoff.first, self.backoff.cap),
            name=f"slices-watch-{publisher.node}",
        )

    # --- the API -------------------------------------------------------------------------------

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name=f"slices-{self.publisher.node}", daemon=True)
        self._worker.start()
        self.watch.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self.watch.stop(self.join_timeout)
        if self._worker is not None:
            self._worker.join(self.join_timeout)

    def running(self) -> bool:
        """Is either thread (publication, watch) still alive?"""
        threads = (self._worker, self.watch.thread)
        return any(t is not None and t.is_alive() for t in threads)

    def set_desired(self, pool: Pool) -> None:
        """Publish ``pool`` from now on (nothing happens if it is the pool already published)."""
        with self._cond:
            if pool == self._desired and (self._dirty or self._published is not None):
                return
            self._desired = pool
            self._dirty = True
            self._cond.notify_all()

    def settled(self) -> bool:
        """The desired pool is published and nothing observed since says otherwise."""
        with self._cond:
            return self._published is not None and not self._dirty and not self._publishing and not self._seen

    # --- observations (the watch thread) -------------------------------------------------------

    def _on_list(self, items: list[Obj]) -> None:
        with self._cond:
            self._seen = {name: None for name in self._published or {}}
            self._seen.update({_name(obj): obj for obj in items})
            self._check()

    def _on_event(self, kind: str, obj: Obj) -> None:
        with self._cond:
            self._seen[_name(obj)] = None if kind == "DELETED" else obj
            self._check()

    def _check(self) -> None:
        """Compare what was observed with the last publication (lock held); a difference means publish."""
        published = self._published
        if published is None or self._publishing:
            return  # checked once the publication in flight is done
        differ = sorted(name for name, obj in self._seen.items() if not _matches(published.get(name), obj))
        self._seen.clear()
        if differ and not self._dirty:
            log.info(
                "slice(s) %s of %s changed on the server; publishing again",
                shorten(", ".join(differ)),
                self.publisher.node,
            )
            self._dirty = True
            self._cond.notify_all()

    # --- publication (the worker thread) -------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping.is_set() or (self._dirty and self._desired is not None))
                if self._stopping.is_set():
                    return
                pool = self._desired
                self._dirty = False
                self._publishing = True
            assert pool is not None
            try:
                result = self.publisher.publish(pool)
            except RecoverableError as exc:  # ApiError, ApiUnavailable
                self._failed(f"publishing slices of {self.publisher.node} failed: {exc}")
                continue
            except Exception:  # a bug or invalid input: keep the loop alive, say so loudly
                log.exception("publishing slices of %s failed unexpectedly", self.publisher.node)
                self._failed("")
                continue
            with self._cond:
                self._publishing = False
                self._published = result.slices
                self.last_result = result
                self.publications += 1
                self._check()
            self.backoff.reset()
            if self.on_published is not None:
                self.on_published(result)

    def _failed(self, message: str) -> None:
        with self._cond:
            self._publishing = False
            self._dirty = True
        delay = self.backoff.next()
        if message:
            log.warning("%s; retrying in %.1fs", message, delay)
        self._stopping.wait(delay)


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _matches(published: Obj | None, observed: Obj | None) -> bool:
    if observed is None:
        return published is None
    return published is not None and spec_matches(observed.get("spec") or {}, published)
