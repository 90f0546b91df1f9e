"""``python -m controller``: the mode controller. Re-partitions idle GPUs for the claims that wait.

Start-up: kubeconfig (in-cluster by default) -> the cluster's capabilities, probed once -> the policy file ->
watches -> leader election -> the reconcile loop; ``/healthz``, ``/readyz`` and ``/metrics`` on ``--port``.
SIGTERM or SIGINT: stop deciding, give the lease up, close the watches and the endpoints, exit 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

from kubernetes.config import ConfigException

from api.errors import ConfigError
from api.names import DEFAULT_DRIVER_NAME
from controller.events import EventRecorder
from controller.explainer import Explainer
from controller.leader import LeaderElector
from controller.loop import Reconciler
from controller.metrics import ControllerMetrics
from controller.planner import Policy, load_policy
from controller.server import HttpListener, endpoints
from dra_driver.errors import DriverError, FatalError
from dra_driver.k8s import Kube
from dra_driver.resourceslice.probe import probe
from dra_driver.termination import Termination

log = logging.getLogger("controller")
LIVE_AFTER_S = 120.0  # /healthz fails when the loop has not turned for this long


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m controller", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", type=Path, help="default: in-cluster config, else $KUBECONFIG / ~/.kube/config")
    p.add_argument("--policy", type=Path, help="ModePolicy YAML (default: the defaults, docs/controller.md)")
    p.add_argument("--driver", default=DEFAULT_DRIVER_NAME)
    p.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE", "default"))
    p.add_argument("--lease-name", default="dra-gpu-mode-controller")
    p.add_argument("--identity", default=f"{socket.gethostname()}-{os.getpid()}")
    p.add_argument("--address", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8080, help="health, readiness and metrics (0: a free port)")
    p.add_argument(
        "--explain-address", default="127.0.0.1", help="the explain listener's address (it shows every namespace)"
    )
    p.add_argument("--explain-port", type=int, default=8081, help="GET /explain/... (0: a free port)")
    p.add_argument("--resync-seconds", type=float, default=10.0, help="re-decide at least this often (from cache)")
    p.add_argument("--lease-seconds", type=int, default=15)
    p.add_argument("--renew-seconds", type=float, default=5.0)
    return p


def _policy(path: Path | None) -> Policy:
    if path is None:
        return Policy()
    return load_policy(path.read_text())


def run(args: argparse.Namespace) -> int:
    policy = _policy(args.policy)
    kube = Kube.from_kubeconfig(args.kubeconfig)
    caps = probe(kube)
    if caps.api_version != "v1":
        raise FatalError(
            f"the controller needs resource.k8s.io/v1 (Kubernetes 1.34+); the server serves {caps.api_version}"
        )
    metrics = ControllerMetrics()
    elector = LeaderElector(
        kube,
        args.lease_namespace,
        args.lease_name,
        args.identity,
        lease_s=args.lease_seconds,
        renew_s=args.renew_seconds,
    )
    loop = Reconciler(
        kube, policy, caps, metrics, EventRecorder(kube, args.identity), elector.leading,
        driver=args.driver, resync_s=args.resync_seconds,
    )  # fmt: skip
    live_after = max(LIVE_AFTER_S, 3 * args.resync_seconds)
    route = endpoints(
        live=lambda: time.monotonic() - loop.last_pass < live_after,
        ready=lambda: loop.cache.synced,
        registry=metrics.registry,
    )
    explainer = Explainer(loop.cache, kube, policy, caps, args.driver, loop.parsed, loop.views)
    listeners = [
        HttpListener(args.address, args.port, route, "controller-http"),
        HttpListener(args.explain_address, args.explain_port, explainer.route, "controller-explain"),
    ]

    def on_signal(signum: int) -> None:
        log.info("signal %d: shutting down", signum)
        loop.wake.set()

    termination = Termination(on_signal).install()
    stop = termination.event
    for listener in listeners:
        listener.start()
    loop.cache.start()
    threads = [
        threading.Thread(target=elector.run, args=(stop,), name="leader-election", daemon=True),
        threading.Thread(target=loop.run, args=(stop,), name="reconcile", daemon=True),
    ]
    for t in threads:
        t.start()
    log.info(
        "mode controller %s up: endpoints on port %d, explain on %s:%d, policy %s%s",
        args.identity, listeners[0].port, args.explain_address, listeners[1].port, args.policy or "(defaults)",
        " (dry run)" if policy.dry_run else "",
    )  # fmt: skip
    termination.wait()
    for t in threads:
        t.join(10)
    elector.release()
    loop.cache.stop()
    for listener in listeners:
        listener.stop()
    log.info("mode controller stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ConfigError, DriverError, ConfigException, OSError) as exc:  # DriverError: ApiError included
        print(f"python -m controller: {exc}", file=sys.stderr)
        return 2
