"""``GET /explain/(claim|pod)/NAMESPACE/NAME?output=table|json``: ``dra-gpu explain`` answered by the mode
controller from its watch cache, with the slices it has parsed already (``ParsedSlices``, shared with its
decisions), so a question about a large cluster reads and parses nothing that has not changed.

The answer is what ``dra-gpu explain`` prints for the same objects, planned with the controller's policy at
the controller's time. Objects the cache does not hold (a ResourceClaimTemplate, a pod bound to a node, a
claim created since the last watch event) are read from the API server.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from api.errors import ConfigError
from controller.cache import WATCHED, ClusterCache
from controller.explain.analysis import NotFound, answer, read_inputs
from controller.planner import Policy
from controller.planner.view import ViewMemo
from controller.server import Answer, text
from dra_driver.errors import DriverError, FatalError
from dra_driver.k8s import Kube, resource_path
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.structured.slicememo import ParsedSlices

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]
OUTPUTS = ("table", "json")


class CacheSource:
    """``read_inputs``'s reads, answered from the controller's watched collections where they hold them."""

    def __init__(self, cache: ClusterCache, kube: Kube) -> None:
        self.cache, self.kube = cache, kube
        self._lists = {
            (resource_path(gv, plural), tuple(sorted(q.items()))): k for k, (gv, plural, q) in WATCHED.items()
        }
        self._gets = {  # (/api/v1 or /apis/GROUP/VERSION, plural) -> its collection
            (resource_path(gv, plural).rsplit("/", 1)[0], plural): k for k, (gv, plural, _) in WATCHED.items()
        }

    def get(self, path: str) -> Obj | None:
        head, sep, rest = path.partition("/namespaces/")
        parts = rest.split("/")
        kind = self._gets.get((head, parts[1])) if sep and len(parts) == 3 else None
        if kind is not None and (found := self.cache.collections[kind].get(parts[0], parts[2])) is not None:
            return found
        return self.kube.get(path)

    def list(self, path: str, **query: str) -> list[Any]:
        kind = self._lists.get((path, tuple(sorted(query.items()))))
        return self.cache.items(kind) if kind is not None else self.kube.list(path, **query)


class Explainer:
    def __init__(
        self,
        cache: ClusterCache,
        kube: Kube,
        policy: Policy,
        caps: Capabilities,
        driver: str,
        parse: ParsedSlices,
        views: ViewMemo,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache, self.source = cache, CacheSource(cache, kube)
        self.policy, self.caps, self.driver, self.clock = policy, caps, driver, clock
        self.parse, self.views = parse, views
        self._one_at_a_time = threading.Lock()  # an answer on a large cluster is 0.2 s of CPU: never several at once

    def route(self, target: str) -> Answer:
        url = urllib.parse.urlsplit(target)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        output = urllib.parse.parse_qs(url.query).get("output", ["table"])[-1]
        if len(parts) != 4 or parts[0] != "explain" or parts[1] not in ("claim", "pod"):
            return text(404, "not found: ask GET /explain/(claim|pod)/NAMESPACE/NAME?output=table|json")
        if output not in OUTPUTS:
            return text(400, f"output: {output!r} is not one of {', '.join(OUTPUTS)}")
        if not self.cache.synced:
            return text(503, f"the controller is still listing {', '.join(self.cache.unsynced())}: ask again soon")
        _, kind, namespace, name = parts
        started = time.perf_counter()
        try:
            with self._one_at_a_time:
                inputs = read_inputs(self.source, kind, name, namespace)
                body = answer(inputs, self.policy, self.caps, self.driver, self.clock(), output, self.parse, self.views)
                self.parse.retain(inputs.slices)  # a replica that does not lead (and decide) forgets here too
        except NotFound as exc:
            return text(404, str(exc))
        except (ConfigError, FatalError) as exc:
            return text(400, str(exc))
        except DriverError as exc:  # the API server's answer to a read the cache could not serve
            return text(502, f"reading the cluster: {exc}")
        log.info("explained %s %s/%s in %.2f s", kind, namespace, name, time.perf_counter() - started)
        content = "application/json" if output == "json" else "text/plain; charset=utf-8"
        return 200, body.encode(), content
