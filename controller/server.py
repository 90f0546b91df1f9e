"""The controller's HTTP listeners, each on a thread of its own.

- ``endpoints``: ``/healthz`` (the loop is alive), ``/readyz`` (every watch has listed once), ``/metrics``
  (Prometheus text). Bound to ``--address`` (all interfaces by default, for the kubelet's probes and scrapers).
- ``controller.explainer`` answers ``/explain/...`` on a listener of its own, bound to 127.0.0.1 by default:
  it shows any namespace's claims and pods, so only who may port-forward to the pod reaches it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Answer = tuple[int, bytes, str]  # status code, body, content type
Route = Callable[[str], Answer]  # the request's path and query -> the answer


class HttpListener:
    """GET only; ``route`` answers every request."""

    def __init__(self, address: str, port: int, route: Route, name: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code, body, content_type = route(self.path)
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer((address, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def text(code: int, message: str) -> Answer:
    return code, (message.rstrip("\n") + "\n").encode(), "text/plain; charset=utf-8"


def endpoints(live: Callable[[], bool], ready: Callable[[], bool], registry: CollectorRegistry) -> Route:
    def route(path: str) -> Answer:
        path = path.split("?")[0]
        if path == "/metrics":
            return 200, generate_latest(registry), CONTENT_TYPE_LATEST
        if path in ("/healthz", "/readyz"):
            ok = live() if path == "/healthz" else ready()
            return text(200, "ok") if ok else text(503, "not ready")
        return text(404, "not found")

    return route
