"""``dra-gpu explain`` of one pod on N simulated DGX A100 nodes in MIG mode, end to end, on a real API server.

The sandbox's control plane is started privately; the N nodes' Node objects and ResourceSlices (``alloc_inputs``:
5 slices and 208 devices per node), the shipped DeviceClasses, the NodeGpuModes CRD, one MIG 1g.5gb claim and its
pod (left alone by kube-scheduler: another ``schedulerName``) are created. Then, each a fresh process timed from
its start to its exit (the best and every pass of ``--repeat``):

- **cli**: ``dra-gpu explain pod`` reading the cluster itself (the reads, the JSON decoding, the analysis);
- **controller**: ``dra-gpu explain pod --controller URL``, answered by a mode controller (``python -m controller``)
  that has listed the cluster and answered once before (its slices parsed). Also timed: the controller's start to
  ready (every watch listed), its first answer (the parse of every slice), and its RSS once it has answered.

Both answers must say the claim is allocatable on every node. Prints a table, or with ``--json`` one object
(keys: docs/benchmarks.md).

    .venv/bin/python -m bench.bench_explain [--nodes 1000] [--repeat 3] [--threads 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from api import gpumodes
from bench.alloc_inputs import CLASSES, KINDS, clusters, inventory
from bench.prep_peer import rss_mb
from dra_driver.k8s import ApiError, Kube, resource_path
from sandbox.binaries import find_or_build
from sandbox.classes import install_crds
from sandbox.controlplane import ControlPlane
from sandbox.ports import pick_free_ports

R = "/apis/resource.k8s.io/v1"
NS = "bench"
POD = "p"
ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 600.0


def _populate(kube: Kube, nodes: Sequence[str], slices: Sequence[dict[str, Any]], threads: int) -> None:
    kube.create("/api/v1/namespaces", {"metadata": {"name": NS}})
    for c in CLASSES:
        kube.create(f"{R}/deviceclasses", c)
    install_crds(kube)
    _served(kube, resource_path(gpumodes.API_VERSION, gpumodes.PLURAL))
    with ThreadPoolExecutor(threads) as ex:
        list(
            ex.map(
                lambda n: kube.create(
                    "/api/v1/nodes", {"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}}
                ),
                nodes,
            )
        )
        list(ex.map(lambda s: kube.create(f"{R}/resourceslices", s), slices))
    mig = next(k for k in KINDS if k.key == "mig")
    kube.create(f"{R}/namespaces/{NS}/resourceclaims", {"metadata": {"name": "c"}, "spec": mig.claim["spec"]})
    pod = {
        "metadata": {"name": POD},
        "spec": {
            "schedulerName": "bench-nobody",  # kube-scheduler leaves it pending, as explain's subject
            "containers": [
                {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"claims": [{"name": "r"}]}}
            ],
            "resourceClaims": [{"name": "r", "resourceClaimName": "c"}],
        },
    }
    kube.create(f"/api/v1/namespaces/{NS}/pods", pod)


def _served(kube: Kube, path: str) -> None:
    """Wait until the freshly installed CRD's objects can be listed."""
    deadline = time.monotonic() + 60
    while True:
        try:
            kube.list(path)
            return
        except ApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _explain(kubeconfig: Path, *extra: str) -> tuple[float, str]:
    """One ``dra-gpu explain pod`` in a fresh process: (seconds from start to exit, its output)."""
    argv = [sys.executable, "-m", "cli.main", "explain", "pod", POD, "-n", NS, "--kubeconfig", str(kubeconfig), *extra]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, timeout=900)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"dra-gpu explain {' '.join(extra)} failed ({done.returncode}): {done.stderr.strip()}")
    return took, done.stdout


def _allocatable_everywhere(output: str, count: int) -> None:
    found = sum(1 for line in output.splitlines() if line.startswith("node-") and line.split()[1:2] == ["allocatable"])
    if found != count:
        raise SystemExit(f"bench setup is wrong: explain finds the claim allocatable on {found} of {count} nodes")


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=900) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, ConnectionError):
        return 0


def _wait(url: str, what: str, proc: subprocess.Popen[bytes], log: Path) -> float:
    start = time.perf_counter()
    while _get(url) != 200:
        if proc.poll() is not None or time.perf_counter() - start > READY_TIMEOUT_S:
            raise SystemExit(f"the controller never got {what} (log: {log})")
        time.sleep(0.2)
    return time.perf_counter() - start


def run(count: int, repeat: int, threads: int, log: Any) -> dict[str, Any]:
    data = clusters(inventory(), count)["mig"]
    slices = [dict(s) for s in data.slices]
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as tmp:
        work = Path(tmp)
        with ControlPlane(work / "cp", find_or_build(log)) as cp:
            kube = Kube.from_kubeconfig(cp.kubeconfig)
            start = time.perf_counter()
            _populate(kube, data.nodes, slices, threads)
            log(f"{count} nodes, {len(slices)} slices created in {time.perf_counter() - start:.1f} s")
            cli = []
            for _ in range(repeat):
                took, out = _explain(cp.kubeconfig)
                _allocatable_everywhere(out, count)
                cli.append(took)
                log(f"cli alone: {took:.2f} s")
            port, explain_port = pick_free_ports(2)
            ctl_log = work / "controller.log"
            argv = [
                sys.executable, "-m", "controller", "--kubeconfig", str(cp.kubeconfig), "--address", "127.0.0.1",
                "--port", str(port), "--explain-port", str(explain_port), "--lease-namespace", NS,
                "--lease-name", "bench", "--resync-seconds", "60",
            ]  # fmt: skip
            with ctl_log.open("wb") as out_file:
                proc = subprocess.Popen(argv, cwd=ROOT, stdout=out_file, stderr=subprocess.STDOUT)
            try:
                ready_s = _wait(f"http://127.0.0.1:{port}/readyz", "ready", proc, ctl_log)
                log(f"controller ready in {ready_s:.1f} s")
                first_s = _wait(f"http://127.0.0.1:{explain_port}/explain/pod/{NS}/{POD}", "an answer", proc, ctl_log)
                log(f"controller's first answer in {first_s:.1f} s")
                remote = []
                for _ in range(repeat):
                    took, out = _explain(cp.kubeconfig, "--controller", f"http://127.0.0.1:{explain_port}")
                    _allocatable_everywhere(out, count)
                    remote.append(took)
                    log(f"cli asking the controller: {took:.2f} s")
                controller_rss = rss_mb(proc.pid)
            finally:
                proc.terminate()
                proc.wait(30)
            answers = [float(m) for m in re.findall(r"explained pod \S+ in ([0-9.]+) s", ctl_log.read_text())]
    return {
        "nodes": count,
        "slices": len(slices),
        "devices": sum(len(s["spec"].get("devices") or ()) for s in slices),
        "repeat": repeat,
        "explain_cli_s": min(cli),
        "explain_cli_runs_s": cli,
        "explain_controller_s": min(remote),
        "explain_controller_runs_s": remote,
        "controller_ready_s": ready_s,
        "controller_first_answer_s": first_s,
        "controller_rss_mb": round(controller_rss, 1),
        "controller_answer_s": answers,  # as the controller logged them: the first, then one per timed run
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each way")
    parser.add_argument("--threads", type=int, default=8, help="threads creating the slices")
    parser.add_argument("--json", action="store_true", help="print one JSON object (keys: docs/benchmarks.md)")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.repeat < 1:
        parser.error("--nodes and --repeat: at least 1")
    r = run(args.nodes, args.repeat, args.threads, (lambda _: None) if args.json else print)
    if args.json:
        print(json.dumps(r))
        return
    print(f"dra-gpu explain of one pod on {r['nodes']} MIG nodes ({r['devices']} devices), load {r['load_average']}")
    print(
        f"  reading the cluster itself:  {r['explain_cli_s']:.2f} s (runs: {', '.join(f'{x:.2f}' for x in r['explain_cli_runs_s'])})"
    )
    print(
        f"  asking the controller:       {r['explain_controller_s']:.2f} s"
        f" (runs: {', '.join(f'{x:.2f}' for x in r['explain_controller_runs_s'])})"
    )
    print(
        f"  controller: ready {r['controller_ready_s']:.1f} s, first answer {r['controller_first_answer_s']:.1f} s"
        f" after that, RSS {r['controller_rss_mb']:.0f} MB;"
        f" its answers took {', '.join(f'{x:.2f}' for x in r['controller_answer_s'])} s"
    )


if __name__ == "__main__":
    main()
